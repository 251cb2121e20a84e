"""The archive writer (tarwriter/writer.py): a plain .tgz whose hashes match its bytes, stored or
compressed, a file given whole or in pieces; a write error surfaces in the caller without hanging,
and an abort leaves nothing."""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import os
import tarfile

import pytest

from imagenette_build.tarwriter import ArchiveWriter
from imagenette_build.tarwriter.pipeline import CHUNK


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
