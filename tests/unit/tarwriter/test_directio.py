"""O_DIRECT writes of full-size archives (tarwriter/directio.py): the same bytes with and without it, a
fallback when the filesystem refuses it, and on by default only on local disk filesystems (the
filesystem type read from /proc/self/mountinfo)."""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from imagenette_build.tarwriter import ArchiveWriter


def _payloads(n: int, size: int) -> list[bytes]:
    """Incompressible, like JPEG data, so the compressed stream is as long as the input."""
    return [hashlib.shake_256(str(i).encode()).digest(size) for i in range(n)]


def _direct_io_works(folder) -> bool:
    """Whether the filesystem of `folder` takes an O_DIRECT open (tmpfs before Linux 6.6 does not)."""
    path = folder / ".direct-probe"
    path.touch()
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_DIRECT))
        return True
    except OSError:
        return False
    finally:
        path.unlink()


def _stored_archive(folder, name: str, payloads: list[bytes]) -> tuple[bytes, ArchiveWriter]:
    w = ArchiveWriter(folder / name, "x", 0, stored=True)
    for i, d in enumerate(payloads):
        w.add_file(f"train/n0/{i:03d}.JPEG", d)
    info = w.close()
    w.commit()
    raw = (folder / name).read_bytes()
    assert info.size == len(raw) and info.sha256 == hashlib.sha256(raw).hexdigest()
    return raw, w


@pytest.mark.skipif(not hasattr(os, "O_DIRECT"), reason="no O_DIRECT on this platform")
def test_full_size_archive_bypasses_the_page_cache_and_has_the_same_bytes(tmp_path, monkeypatch, use_settings):
    """Written with O_DIRECT (several whole aligned buffers, then an unaligned tail written
    without it) or through the page cache ($IMAGENETTE_BUILD_DIRECT_IO=0): the same bytes."""
    from imagenette_build.tarwriter import directio

    payloads = _payloads(190, 100_003)  # 19 MB: two whole DIRECT_BUFFERs and a part
    use_settings(direct_io="1")  # (whatever filesystem tmp_path is on)
    direct, w = _stored_archive(tmp_path, "a.tgz", payloads)
    assert (w._direct is not None) == _direct_io_works(tmp_path)
    if w._direct is not None:
        assert len(direct) > 2 * directio.DIRECT_BUFFER and len(direct) % directio.DIRECT_ALIGN
    use_settings(direct_io="0")
    buffered, w = _stored_archive(tmp_path, "b.tgz", payloads)
    assert w._direct is None
    assert direct == buffered
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(direct))) as tar:
        assert [tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()] == payloads


@pytest.mark.skipif(not hasattr(os, "O_DIRECT"), reason="no O_DIRECT on this platform")
def test_direct_file_refused_at_open_or_at_a_write_falls_back_to_plain_writes(tmp_path, monkeypatch, use_settings):
    """A filesystem that refuses the O_DIRECT open: the archive is written as usual. One that
    refuses a write (EINVAL: it wants another alignment): the file goes on without O_DIRECT, and
    the bytes are the same."""
    from imagenette_build.tarwriter import directio

    payloads = _payloads(30, 77_777)
    use_settings(direct_io="0")
    expected, _ = _stored_archive(tmp_path, "plain.tgz", payloads)
    use_settings(direct_io="1")

    real_open, real_write = os.open, os.write

    def refuse_direct_open(path, flags, *args):
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(directio.os, "open", refuse_direct_open)
    refused, w = _stored_archive(tmp_path, "refused.tgz", payloads)
    assert w._direct is None and refused == expected
    monkeypatch.setattr(directio.os, "open", real_open)

    import fcntl

    refusals = []

    def refuse_direct_write(fd, data):
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            refusals.append(len(data))
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        return real_write(fd, data)

    monkeypatch.setattr(directio, "DIRECT_BUFFER", 1 << 16)  # several buffers: the first write is refused
    monkeypatch.setattr(directio.os, "write", refuse_direct_write)
    if not _direct_io_works(tmp_path):
        pytest.skip("the filesystem of tmp_path refuses O_DIRECT: no direct write to refuse")
    fallen_back, w = _stored_archive(tmp_path, "fallback.tgz", payloads)
    assert refusals == [1 << 16] and not w._direct.direct
    assert fallen_back == expected


@pytest.mark.skipif(not hasattr(os, "O_DIRECT"), reason="no O_DIRECT on this platform")
def test_the_direct_descriptor_is_never_opened_through_a_symlink_put_at_the_temporary_name(tmp_path, monkeypatch, use_settings):
    """The archive's temporary name is guessable (host and pid): made afresh (create_new), it was then
    opened a second time by name for O_DIRECT, following whatever was there by then. A symlink put
    there in between had the archive written into the file it points to. Now that open is of the
    very file made, or none (and the archive is written through the first descriptor)."""
    from imagenette_build.tarwriter import directio, writer

    use_settings(direct_io="1")
    victim = tmp_path / "victim"
    victim.write_bytes(b"theirs")
    real_create_new = writer.create_new

    def then_swapped(path, *args):
        fd = real_create_new(path, *args)
        if Path(path).name.startswith(".a.tgz.partial-"):
            os.unlink(path)
            os.symlink(victim, path)  # what another user of the folder could do in between
        return fd

    monkeypatch.setattr(writer, "create_new", then_swapped)
    w = ArchiveWriter(tmp_path / "a.tgz", "x", 0, stored=True)
    w.add_file("train/n0/0.JPEG", _payloads(1, 10_000)[0])
    w.close()
    w.abort()
    assert victim.read_bytes() == b"theirs" and w._direct is None
    fd = real_create_new(tmp_path / "mine")
    direct = directio.DirectFile.open(tmp_path / "mine", fd)
    assert (direct is not None) == _direct_io_works(tmp_path)
    if direct is not None:
        direct.discard()
    os.close(fd)


MOUNTINFO = r"""22 1 252:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 0:40 / /data rw,relatime shared:2 - nfs4 server:/export rw,vers=4.2
31 30 8:16 / /data/local\040disk rw - xfs /dev/sdb rw
32 22 0:42 / /scratch rw master:7 shared:9 - lustre 10.0.0.1@tcp:/fs rw
33 22 0:43 / /home/u/remote rw,nosuid - fuse.sshfs u@h:/ rw
34 22 0:44 / /dev/shm rw - tmpfs tmpfs rw
35 22 8:32 / /mnt/disk rw - nfs old:/x rw
36 22 8:33 / /mnt/disk rw - btrfs /dev/sdc rw
a line that is not a mount
"""


@pytest.mark.parametrize("path, fstype", [
    ("/work/out", "ext4"),  # only the root contains it
    ("/data", "nfs4"), ("/data/imagenet/out", "nfs4"),
    ("/data/local disk/out", "xfs"),  # the longest mount point wins; "\040" is a space
    ("/data/local", "nfs4"),  # a mount point is a whole path component, not a prefix of a name
    ("/scratch/u", "lustre"),  # optional fields before "-"
    ("/home/u/remote/x", "fuse.sshfs"),
    ("/dev/shm/x", "tmpfs"),
    ("/mnt/disk/x", "btrfs"),  # mounted over the same mount point: the last one is seen
])
def test_filesystem_type_is_that_of_the_longest_mount_point(tmp_path, path, fstype):
    from imagenette_build.tarwriter.directio import filesystem_type

    info = tmp_path / "mountinfo"
    info.write_text(MOUNTINFO)
    assert filesystem_type(Path(path), str(info)) == fstype
    assert filesystem_type(Path(path), str(tmp_path / "missing")) is None


@pytest.mark.skipif(not Path("/proc/self/mountinfo").exists() or not shutil.which("findmnt"),
                    reason="needs Linux's /proc/self/mountinfo and util-linux's findmnt to compare with")
def test_filesystem_type_agrees_with_findmnt(tmp_path):
    from imagenette_build.tarwriter.directio import filesystem_type

    for folder in (tmp_path, Path.cwd(), Path("/")):
        out = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "-T", str(folder)], capture_output=True, text=True)
        assert filesystem_type(folder) == out.stdout.strip().splitlines()[0]


@pytest.mark.skipif(not hasattr(os, "O_DIRECT"), reason="no O_DIRECT on this platform")
@pytest.mark.parametrize("fstype, setting, direct", [
    ("ext4", None, True), ("xfs", "auto", True), ("nfs4", None, False), ("lustre", None, False),
    ("fuse.sshfs", "", False), ("tmpfs", None, False), (None, None, False),  # not Linux: unknown
    ("ext4", "0", False), ("nfs4", "1", True),
])
def test_direct_io_by_default_only_on_local_disk_filesystems(tmp_path, monkeypatch, fstype, setting, direct, use_settings):
    """O_DIRECT was measured on a local disk; a network or FUSE filesystem keeps the page cache
    unless $IMAGENETTE_BUILD_DIRECT_IO=1 asks for it, and =0 turns it off everywhere."""
    from imagenette_build.tarwriter import directio

    monkeypatch.setattr(directio, "filesystem_type", lambda folder: fstype)
    if setting is None:
        use_settings()
    else:
        use_settings(direct_io=setting)
    assert directio.direct_io_wanted(tmp_path) is direct
    payloads = _payloads(5, 5000)
    raw, w = _stored_archive(tmp_path, "a.tgz", payloads)
    assert (w._direct is not None) == (direct and _direct_io_works(tmp_path))
