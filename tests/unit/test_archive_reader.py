"""Verify's archive reader (archive_reader.py) on untrusted bytes: random and mutated archives, damaged
tar headers inside a sound gzip, and any header sizes, types and names within lowered bounds give
a one-line `problem` or what gzip and tarfile read, never another exception, never more held than
the bounds allow."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from imagenette_build.archive_reader import ArchiveStream
from imagenette_build.tarwriter import ArchiveWriter

from ..fuzzkit import SAMPLE_CSV, WNIDS, event, mutated


# ------------------------------------------------------------------------------ verify's archive reader


def _valid_archive(workdir: Path) -> bytes:
    path = workdir / "fuzz-8.tgz"
    if not path.exists():
        w = ArchiveWriter(path, "fuzz-8", 1612569600)
        w.add_file("list.csv", SAMPLE_CSV.encode())
        for i in range(3):
            w.add_file(f"train/{WNIDS[i]}/{WNIDS[i]}_{i}.JPEG", bytes((i * 7 + j) % 256 for j in range(300 + 97 * i)))
        w.close()
        w.commit()
    return path.read_bytes()


def _read_archive(workdir: Path, data: bytes, gz: bool = True):
    path = workdir / ("archive.tgz" if gz else "archive.tar")
    path.write_bytes(data)
    with ArchiveStream(path, gzip=gz) as stream:
        entries = [(e.name, e.kind, e.size, e.data, e.unsafe) for e in stream.entries()]
        digests = stream.digests()
    assert stream.io_error is None
    assert digests.size == len(data) and digests.sha256 == hashlib.sha256(data).hexdigest()
    assert digests.md5 == hashlib.md5(data).hexdigest()
    event("sound" if stream.problem is None else "problem: " + " ".join(stream.problem.split()[:2]))
    return entries, stream.problem


def _check_against_tarfile(data: bytes, entries, gz: bool = True) -> None:
    """A stream the reader found sound is one gzip member (or, not `gz`, a plain tar) holding a tar
    that tarfile reads the same: the same members in the same order, and the same bytes for every
    member whose data it read."""
    tar_bytes = gzip.decompress(data) if gz else data
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        expected = [(info.name, tar.extractfile(info).read() if info.isfile() else None) for info in tar]
    assert [name for name, *_ in entries] == [name for name, _ in expected]
    for (name, kind, size, payload, unsafe), (_, real) in zip(entries, expected):
        if payload is not None:
            assert kind == "file" and unsafe is None and payload == real, name


@pytest.mark.fuzz
def test_valid_archive_reads_clean(workdir):
    data = _valid_archive(workdir)
    entries, problem = _read_archive(workdir, data)
    assert problem is None and len(entries) == 1 + 1 + 1 + 3 + 3  # top, csv, train/, 3 class folders, 3 files
    _check_against_tarfile(data, entries)


@pytest.mark.fuzz
@given(st.binary(max_size=600))
def test_archive_random_bytes(workdir, data):
    entries, problem = _read_archive(workdir, data)
    if problem is None:
        _check_against_tarfile(data, entries)


@pytest.mark.fuzz
@given(st.data())
def test_archive_mutated(workdir, data):
    original = _valid_archive(workdir)
    damaged = data.draw(mutated(original))
    assume(damaged != original)
    entries, problem = _read_archive(workdir, damaged)
    if problem is None:
        _check_against_tarfile(damaged, entries)


@pytest.mark.fuzz
@given(st.data())
def test_archive_with_mutated_tar_inside_a_sound_gzip(workdir, data):
    """Damage below the gzip layer (whose CRC would catch most byte flips): the tar headers."""
    tar_bytes = gzip.decompress(_valid_archive(workdir))
    damaged_tar = data.draw(mutated(tar_bytes[:4096])) + tar_bytes[4096:]
    damaged = gzip.compress(damaged_tar, mtime=0)
    entries, problem = _read_archive(workdir, damaged)
    if problem is None:
        try:
            _check_against_tarfile(damaged, entries)
        except tarfile.TarError:
            pytest.fail("the reader found a stream sound that tarfile cannot read")
    for name, kind, size, payload, unsafe in entries:
        if unsafe is not None or kind != "file":
            assert payload is None  # never the data of a member that could do harm


@pytest.mark.fuzz
def test_a_plain_tar_reads_as_the_tar_in_its_gzip(workdir):
    """A WebDataset shard is a plain tar: read with the same bounds, hashed as it is on disk."""
    tar_bytes = gzip.decompress(_valid_archive(workdir))
    entries, problem = _read_archive(workdir, tar_bytes, gz=False)
    assert problem is None and entries == _read_archive(workdir, _valid_archive(workdir))[0]
    _check_against_tarfile(tar_bytes, entries, gz=False)


def _end_of_members(tar_bytes: bytes) -> int:
    """Where the last member's data (padded to a block) ends: the end-of-archive marker after it."""
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        last = tar.getmembers()[-1]
    return last.offset_data + -(-last.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE


@pytest.mark.parametrize("damage,problem", [
    (lambda tar: tar[:1500], "truncated: the tar ends inside a member's data"),
    (lambda tar: tar[:_end_of_members(tar)], "the tar has no end-of-archive marker (truncated)"),
    (lambda tar: tar + b"garbage", "damaged tar header or garbage at offset"),
    (lambda tar: gzip.compress(tar, mtime=0), "not a valid tar stream: "),  # never inflated: not a plain tar
])
def test_a_broken_plain_tar_is_one_problem(workdir, damage, problem):
    tar_bytes = gzip.decompress(_valid_archive(workdir))
    _, found = _read_archive(workdir, damage(tar_bytes), gz=False)
    assert found is not None and problem in found, found


@pytest.mark.fuzz
@given(st.data())
def test_plain_tar_mutated(workdir, data):
    original = gzip.decompress(_valid_archive(workdir))
    damaged = data.draw(mutated(original[:4096])) + original[4096:]
    assume(damaged != original)
    entries, problem = _read_archive(workdir, damaged, gz=False)
    if problem is None:
        try:
            _check_against_tarfile(damaged, entries, gz=False)
        except tarfile.TarError:
            pytest.fail("the reader found a plain tar sound that tarfile cannot read")


# ------------------------------------------------------------------------------ the reader's resource bounds

# The bounds, lowered so that small inputs reach them (the real ones are in imagenette_build/limits.py).
_SMALL_LIMITS = {"MAX_HEADER_BYTES": 2048, "MAX_GLOBAL_HEADER_BYTES": 1024, "MAX_HEADER_CHAIN": 3,
                 "MAX_MEMBER_BYTES": 4096, "MAX_NAME_BYTES": 256, "MAX_MEMBERS": 12, "MAX_NAMES_BYTES": 1500}
_TYPES = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "pax": tarfile.XHDTYPE,
          "global": tarfile.XGLTYPE, "longname": tarfile.GNUTYPE_LONGNAME, "longlink": tarfile.GNUTYPE_LONGLINK,
          "sparse": tarfile.GNUTYPE_SPARSE, "odd": b"Z"}
_members = st.lists(st.tuples(
    st.sampled_from(list(_TYPES)),
    st.one_of(st.none(), st.integers(0, 6000), st.integers(-3, 2 ** 40), st.just(2 ** 80)),  # None: the true size
    st.sampled_from([b"", b"\0", b"x", b"12 path=abc\n", b"30 GNU.sparse.realsize=x\n", b"9" * 30 + b" a=b\n"]),
    st.integers(0, 3000),  # payload bytes
    st.integers(1, 400),  # name length
), max_size=14)


def _hostile_tar(members) -> bytes:
    out = bytearray()
    for i, (kind, declared, pattern, length, name_len) in enumerate(members):
        payload = (pattern * (length // max(len(pattern), 1) + 1))[:length] if pattern else bytes(length)
        info = tarfile.TarInfo(f"f{i}/" + "n" * name_len)
        info.type, info.size = _TYPES[kind], len(payload) if declared is None else declared
        out += info.tobuf(format=tarfile.GNU_FORMAT, encoding="utf-8", errors="surrogateescape")
        out += payload + bytes(-len(payload) % tarfile.BLOCKSIZE)
    return bytes(out + bytes(1024))


@pytest.mark.fuzz
@pytest.mark.parametrize("gz", [True, False], ids=["tgz", "plain"])
@given(members=_members)
def test_archive_reader_stays_within_its_bounds(workdir, gz, members):
    """Any header sizes, types, payloads and name lengths (declared sizes true, false, negative or
    2^80): the reader ends, with a result or a one-line problem, within the bounds: no name held
    longer than MAX_NAME_BYTES, no member read larger than MAX_MEMBER_BYTES, no more members than
    MAX_MEMBERS, and a peak of traced memory a small multiple of the bounds."""
    import tracemalloc

    from imagenette_build import archive_reader

    data = gzip.compress(_hostile_tar(members), mtime=0) if gz else _hostile_tar(members)
    path = workdir / "bounds.tgz"
    path.write_bytes(data)
    with mock.patch.multiple(archive_reader, **_SMALL_LIMITS):
        tracemalloc.start()
        try:
            with ArchiveStream(path, gzip=gz) as stream:
                entries = [(e.name, e.kind, e.size, e.data, e.unsafe) for e in stream.entries()]
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    event("sound" if stream.problem is None else "problem: " + " ".join(stream.problem.split()[:4]))
    assert stream.io_error is None
    # a problem names at most one member, by a name within the bounds (text output escapes it)
    assert stream.problem is None or len(stream.problem) < _SMALL_LIMITS["MAX_NAME_BYTES"] + 400, stream.problem
    assert len(entries) <= _SMALL_LIMITS["MAX_MEMBERS"]
    for name, kind, size, payload, unsafe in entries:
        if len(name.encode("utf-8", "surrogatepass")) > _SMALL_LIMITS["MAX_NAME_BYTES"]:
            assert unsafe and unsafe.startswith("a name of") and len(name) <= archive_reader.SHOWN_CHARS + 30
        if payload is not None:
            assert kind == "file" and unsafe is None and len(payload) == size <= _SMALL_LIMITS["MAX_MEMBER_BYTES"]
    # the archive is a few kB: what is traced is the reader's own buffers (RAW_CHUNK at most) and headers
    assert peak < archive_reader.RAW_CHUNK + 64 * _SMALL_LIMITS["MAX_HEADER_BYTES"], peak
    if stream.problem is None and not any(unsafe and unsafe.startswith("a name of") for *_, unsafe in entries):
        try:
            _check_against_tarfile(data, entries, gz)
        except (tarfile.TarError, ValueError, IndexError, RecursionError):
            pass  # tarfile cannot read what the reader found sound: compared only where it can
