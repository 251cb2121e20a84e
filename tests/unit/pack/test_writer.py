"""The packing pipeline (pack/): threads that deflate, hash and write must give the same bytes as a
plain gzip of the tar, and must surface a write error in the caller without hanging."""

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
from hypothesis import given, settings
from hypothesis import strategies as st

from imagenette_build.pack import ArchiveWriter
from imagenette_build.pack.pipeline import CHUNK


def _payloads(n: int, size: int) -> list[bytes]:
    """Incompressible, like JPEG data, so the compressed stream is as long as the input."""
    return [hashlib.shake_256(str(i).encode()).digest(size) for i in range(n)]


def test_pipeline_output_is_a_plain_tgz_with_matching_hashes(tmp_path):
    data = _payloads(40, 100_000)  # ~4 MB: several chunks through both stages
    w = ArchiveWriter(tmp_path / "x.tgz", "x", 0)
    for i, d in enumerate(data):
        w.add_file(f"train/n0/{i:03d}.JPEG", d)
    info = w.close()
    w.commit()
    raw = (tmp_path / "x.tgz").read_bytes()
    assert info.size == len(raw) > 3 * CHUNK // 2
    assert info.sha256 == hashlib.sha256(raw).hexdigest()
    assert info.md5 == hashlib.md5(raw).hexdigest()
    assert info.md5_first_mib == hashlib.md5(raw[: 1 << 20]).hexdigest()
    tar_bytes = gzip.decompress(raw)  # checks the CRC and length trailer too
    assert info.tar_sha256 == hashlib.sha256(tar_bytes).hexdigest()
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        files = [m for m in tar.getmembers() if m.isfile()]
        assert [tar.extractfile(m).read() for m in files] == data


def test_stored_archive_has_the_same_tar_and_hashes_match(tmp_path):
    """`stored` (full-size archives) changes the deflate stream, not the tar inside it."""
    data = _payloads(40, 100_000)
    infos, raws = [], []
    for stored in (False, True):
        w = ArchiveWriter(tmp_path / f"{stored}.tgz", "x", 0, stored=stored)
        for i, d in enumerate(data):
            w.add_file(f"train/n0/{i:03d}.JPEG", d)
        infos.append(w.close())
        w.commit()
        raws.append((tmp_path / f"{stored}.tgz").read_bytes())
    compressed, stored = infos
    assert stored.tar_sha256 == compressed.tar_sha256 and raws[0] != raws[1]
    assert stored.sha256 == hashlib.sha256(raws[1]).hexdigest() and stored.md5 == hashlib.md5(raws[1]).hexdigest()
    assert gzip.decompress(raws[1]) == gzip.decompress(raws[0])
    assert "stored" in stored.compressor and "stored" not in compressed.compressor


def test_a_file_given_in_pieces_is_the_same_member_and_a_wrong_size_is_refused(tmp_path):
    """add_chunks (the generated noisy-labels CSV, never held whole) writes what add_file writes."""
    pieces = _payloads(3, 3000)
    whole = b"".join(pieces)
    infos = []
    for how in ("file", "chunks"):
        w = ArchiveWriter(tmp_path / f"{how}.tgz", "x", 0)
        if how == "file":
            w.add_file("a.csv", whole)
        else:
            w.add_chunks("a.csv", len(whole), iter(pieces))
        infos.append(w.close())
        w.commit()
    assert infos[0].tar_sha256 == infos[1].tar_sha256 and infos[0].sha256 == infos[1].sha256
    with tarfile.open(tmp_path / "chunks.tgz") as tf:
        assert tf.extractfile("x/a.csv").read() == whole
    w = ArchiveWriter(tmp_path / "bad.tgz", "x", 0)
    with pytest.raises(ValueError, match="a.csv: 9000 bytes given, 8999 announced"):
        w.add_chunks("a.csv", len(whole) - 1, iter(pieces))
    with pytest.raises(ValueError, match="b.csv: 9000 bytes given, 9001 announced"):
        w.add_chunks("b.csv", len(whole) + 1, iter(pieces))
    w.abort()


def test_stored_stream_is_full_blocks_cut_per_chunk_and_ends_with_an_empty_final_block(tmp_path):
    """The stored deflate stream is framed here (not by zlib, whose cuts vary by version): every
    block stored, 65,535 bytes but the last of each CHUNK of tar, then an empty block with BFINAL."""
    from imagenette_build.pack.pipeline import Pipeline
    from imagenette_build.pack.tarformat import STORED_BLOCK

    stream = b"".join(_payloads(25, 100_003))  # 2.5 MB: two whole chunks and a part
    path = tmp_path / "s.gz"
    with open(path, "wb") as f:
        pipe = Pipeline(f, stored=True)
        pipe.write(stream)
        pipe.close()
    raw = path.read_bytes()
    pos, blocks, payload = 10, [], bytearray()  # after the 10-byte gzip header
    while True:
        head = raw[pos]
        n, nn = int.from_bytes(raw[pos + 1:pos + 3], "little"), int.from_bytes(raw[pos + 3:pos + 5], "little")
        assert head in (0, 1) and n ^ nn == 0xFFFF  # BTYPE 00, byte-aligned, LEN and NLEN agree
        payload += raw[pos + 5:pos + 5 + n]
        blocks.append(n)
        pos += 5 + n
        if head == 1:
            break
    assert bytes(payload) == stream and len(raw) == pos + 8  # then only crc32 and size
    per_chunk = [STORED_BLOCK] * (CHUNK // STORED_BLOCK) + [CHUNK % STORED_BLOCK]
    rest = len(stream) - 2 * CHUNK
    assert blocks == per_chunk * 2 + [STORED_BLOCK] * (rest // STORED_BLOCK) + [rest % STORED_BLOCK] + [0]
    assert gzip.decompress(raw) == stream


@pytest.mark.parametrize("stored", [False, True])
def test_compressed_bytes_depend_only_on_the_tar_bytes_not_on_how_they_were_written(tmp_path, stored):
    """ISA-L's output depends on where its input is cut: the pipeline cuts the tar stream into fixed
    CHUNK-sized pieces, so the same bytes written in any pieces give the same archive."""
    from imagenette_build.pack.pipeline import Pipeline

    stream = b"".join(_payloads(30, 123_457))  # ~3.7 MB, not a multiple of CHUNK
    outputs = set()
    for cuts in ([len(stream)], [512, 1536, 150_000], [CHUNK - 1], [7, CHUNK + 3, 100_000]):
        path = tmp_path / f"{len(outputs)}.gz"
        with open(path, "wb") as f:
            pipe = Pipeline(f, stored)
            pos, i = 0, 0
            while pos < len(stream):
                n = cuts[i % len(cuts)]
                pipe.write(stream[pos:pos + n])
                pos, i = pos + n, i + 1
            pipe.close()
        raw = path.read_bytes()
        assert gzip.decompress(raw) == stream
        outputs.add(raw)
    assert len(outputs) == 1


class _FullDisk:
    """A file object that fails like a full disk after `room` bytes."""

    def __init__(self, room: int):
        self.room = room

    def write(self, data):
        self.room -= len(data)
        if self.room < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def close(self):
        pass


@pytest.mark.parametrize("stored", [False, True])
def test_write_error_in_the_sink_thread_is_raised_in_the_caller(tmp_path, stored):
    w = ArchiveWriter(tmp_path / "x.tgz", "x", 0, stored=stored)
    w._pipe.f = _FullDisk(room=2 * CHUNK)
    with pytest.raises(OSError) as exc:
        for i, d in enumerate(_payloads(200, 100_000)):  # 20 MB: far more than the room
            w.add_file(f"{i}.JPEG", d)
        w.close()
    assert exc.value.errno == errno.ENOSPC
    w.abort()
    assert not any(stage.is_alive() for stage in w._pipe.stages)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("stored", [False, True])
def test_abort_midway_stops_the_threads_and_removes_the_file(tmp_path, stored):
    w = ArchiveWriter(tmp_path / "x.tgz", "x", 0, stored=stored)
    for i, d in enumerate(_payloads(60, 100_000)):
        w.add_file(f"{i}.JPEG", d)
    w.abort()
    assert not any(stage.is_alive() for stage in w._pipe.stages)
    assert list(tmp_path.iterdir()) == []


@settings(max_examples=300, deadline=None)
@given(name=st.text(st.characters(min_codepoint=0, max_codepoint=127), min_size=1, max_size=110),
       size=st.one_of(st.integers(0, 10**6), st.integers(8**11 - 3, 8**11 + 3)),
       mtime=st.one_of(st.integers(0, 2**31), st.integers(8**11 - 3, 8**11 + 3)), is_dir=st.booleans())
def test_tar_header_is_what_tarfile_makes(name, size, mtime, is_dir):
    """The filled-in ustar template and tarfile agree byte for byte, and past the template's limits
    (names over 100 bytes, sizes of 8 GiB, an mtime past 2242) tarfile's own pax header is used."""
    from imagenette_build.pack.tarformat import _tarfile_header, tar_header

    full = name + "/" if is_dir and not name.endswith("/") else name
    assert tar_header(name, size, mtime, is_dir) == _tarfile_header(full, size, mtime, is_dir)


def test_tar_header_non_ascii_name_uses_pax():
    from imagenette_build.pack.tarformat import tar_header

    header = tar_header("x/café.JPEG", 10, 0)
    assert len(header) > 512  # a pax extended header before the ustar one
    with tarfile.open(fileobj=io.BytesIO(header + b"0" * 10 + bytes(502) + bytes(1024))) as tar:
        assert tar.getnames() == ["x/café.JPEG"]


# --- O_DIRECT (full-size archives) ---------------------------------------------------------------

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
def test_full_size_archive_bypasses_the_page_cache_and_has_the_same_bytes(tmp_path, monkeypatch):
    """Written with O_DIRECT (several whole aligned buffers, then an unaligned tail written
    without it) or through the page cache ($IMAGENETTE_BUILD_DIRECT_IO=0): the same bytes."""
    from imagenette_build.pack import directio

    payloads = _payloads(190, 100_003)  # 19 MB: two whole DIRECT_BUFFERs and a part
    monkeypatch.setenv(directio.DIRECT_ENV, "1")  # (whatever filesystem tmp_path is on)
    direct, w = _stored_archive(tmp_path, "a.tgz", payloads)
    assert (w._direct is not None) == _direct_io_works(tmp_path)
    if w._direct is not None:
        assert len(direct) > 2 * directio.DIRECT_BUFFER and len(direct) % directio.DIRECT_ALIGN
    monkeypatch.setenv(directio.DIRECT_ENV, "0")
    buffered, w = _stored_archive(tmp_path, "b.tgz", payloads)
    assert w._direct is None
    assert direct == buffered
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(direct))) as tar:
        assert [tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()] == payloads


@pytest.mark.skipif(not hasattr(os, "O_DIRECT"), reason="no O_DIRECT on this platform")
def test_direct_file_refused_at_open_or_at_a_write_falls_back_to_plain_writes(tmp_path, monkeypatch):
    """A filesystem that refuses the O_DIRECT open: the archive is written as usual. One that
    refuses a write (EINVAL: it wants another alignment): the file goes on without O_DIRECT, and
    the bytes are the same."""
    from imagenette_build.pack import directio

    payloads = _payloads(30, 77_777)
    monkeypatch.setenv(directio.DIRECT_ENV, "0")
    expected, _ = _stored_archive(tmp_path, "plain.tgz", payloads)
    monkeypatch.setenv(directio.DIRECT_ENV, "1")

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
    from imagenette_build.pack.directio import filesystem_type

    info = tmp_path / "mountinfo"
    info.write_text(MOUNTINFO)
    assert filesystem_type(Path(path), str(info)) == fstype
    assert filesystem_type(Path(path), str(tmp_path / "missing")) is None


@pytest.mark.skipif(not Path("/proc/self/mountinfo").exists() or not shutil.which("findmnt"),
                    reason="needs Linux's /proc/self/mountinfo and util-linux's findmnt to compare with")
def test_filesystem_type_agrees_with_findmnt(tmp_path):
    from imagenette_build.pack.directio import filesystem_type

    for folder in (tmp_path, Path.cwd(), Path("/")):
        out = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "-T", str(folder)], capture_output=True, text=True)
        assert filesystem_type(folder) == out.stdout.strip().splitlines()[0]


@pytest.mark.skipif(not hasattr(os, "O_DIRECT"), reason="no O_DIRECT on this platform")
@pytest.mark.parametrize("fstype, setting, direct", [
    ("ext4", None, True), ("xfs", "auto", True), ("nfs4", None, False), ("lustre", None, False),
    ("fuse.sshfs", "", False), ("tmpfs", None, False), (None, None, False),  # not Linux: unknown
    ("ext4", "0", False), ("nfs4", "1", True),
])
def test_direct_io_by_default_only_on_local_disk_filesystems(tmp_path, monkeypatch, fstype, setting, direct):
    """O_DIRECT was measured on a local disk; a network or FUSE filesystem keeps the page cache
    unless $IMAGENETTE_BUILD_DIRECT_IO=1 asks for it, and =0 turns it off everywhere."""
    from imagenette_build.pack import directio

    monkeypatch.setattr(directio, "filesystem_type", lambda folder: fstype)
    if setting is None:
        monkeypatch.delenv(directio.DIRECT_ENV, raising=False)
    else:
        monkeypatch.setenv(directio.DIRECT_ENV, setting)
    assert directio.direct_io_wanted(tmp_path) is direct
    payloads = _payloads(5, 5000)
    raw, w = _stored_archive(tmp_path, "a.tgz", payloads)
    assert (w._direct is not None) == (direct and _direct_io_works(tmp_path))
