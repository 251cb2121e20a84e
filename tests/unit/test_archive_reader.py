"""Property tests (hypothesis) for the three readers of untrusted input: the manifest loader, the
file-list CSV reader and verify's archive reader. Random and mutated inputs must give a clean
error (UserError, or a `problem` for the archive reader) or a correct result, never another
exception.

Short in CI (profile "ci": a few seconds). For a longer run:

    HYPOTHESIS_PROFILE=long python -m pytest tests/test_fuzz.py      # 2,000 examples per test
    HYPOTHESIS_PROFILE=long HYPOTHESIS_EXAMPLES=20000 python -m pytest tests/test_fuzz.py
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis.control import currently_in_test_context, event as _hypothesis_event
from hypothesis import strategies as st

from imagenette_build import filelist
from imagenette_build import manifest as manifests
from imagenette_build.archive_reader import ArchiveStream
from imagenette_build.errors import UserError
from imagenette_build.pack import ArchiveWriter

settings.register_profile("ci", max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("long", max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "2000")), deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

WNIDS = ["n01440764", "n02102040", "n02979186"]
SAMPLE_TOML = f'''name = "fuzz"
description = "a small manifest"
stem = "fuzz"
root_files = ["list.csv"]

[split]
policy = "files"
list = "list.csv"

[[classes]]
wnid = "{WNIDS[0]}"
name = "tench"

[[classes]]
wnid = "{WNIDS[1]}"

[[classes]]
wnid = "{WNIDS[2]}"

[[published]]
archive = "fuzz-160.tgz"
uploaded = "2021-02"
size = 123
md5 = "0123456789abcdef0123456789abcdef"
'''
SAMPLE_CSV = ("path,noisy_labels_0,is_valid\n"
              f"train/{WNIDS[0]}/{WNIDS[0]}_1.JPEG,{WNIDS[0]},False\n"
              f"train/{WNIDS[1]}/{WNIDS[1]}_2.JPEG,{WNIDS[1]},False\n"
              f"val/{WNIDS[2]}/ILSVRC2012_val_00000003.JPEG,{WNIDS[2]},True\n")


def event(what: str) -> None:
    """Count outcomes (shown by --hypothesis-show-statistics): how often inputs still parse."""
    if currently_in_test_context():
        _hypothesis_event(what)


@pytest.fixture(scope="module")
def workdir():
    d = Path(tempfile.mkdtemp(prefix="fuzz-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


# ------------------------------------------------------------------------------ mutations


@st.composite
def mutated(draw, base: bytes, alphabet=None):
    """`base` with a few random edits: cut, insert, overwrite, duplicate or drop a line, truncate."""
    data = bytearray(base)
    tokens = st.binary(max_size=12) if alphabet is None else st.text(alphabet, max_size=12).map(str.encode)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["cut", "insert", "overwrite", "dup_line", "drop_line", "truncate"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "cut":
            del data[pos:pos + draw(st.integers(1, 20))]
        elif op == "insert":
            data[pos:pos] = draw(tokens)
        elif op == "overwrite":
            chunk = draw(tokens)
            data[pos:pos + len(chunk)] = chunk
        elif op in ("dup_line", "drop_line"):
            lines = bytes(data).split(b"\n")
            i = draw(st.integers(0, len(lines) - 1))
            lines[i:i + 1] = [lines[i]] * (2 if op == "dup_line" else 0)
            data = bytearray(b"\n".join(lines))
        else:
            del data[pos:]
    return bytes(data)


TOML_ALPHABET = "abcnprstuvwy0123456789_-.=\"'[]{},# \n" + "é\x00"
CSV_ALPHABET = "abdlnrstv0123456789_/.,\"\n\r/ " + "\ufeff"


# ------------------------------------------------------------------------------ the manifest loader


def _load(workdir: Path, toml: bytes, csv: bytes = SAMPLE_CSV.encode()):
    (workdir / "list.csv").write_bytes(csv)
    path = workdir / "fuzz.toml"
    path.write_bytes(toml)
    try:
        m = manifests.load_path(path)
    except UserError as exc:  # one line, naming the manifest or its list
        assert "\n" not in str(exc) and str(exc).startswith(str(workdir)), str(exc)
        event("UserError")
        return None
    event("loaded")
    return m


def _check_manifest(m) -> None:
    known = set(manifests.imagenet_classes.by_wnid())
    assert m.classes and all(c.wnid in known for c in m.classes)
    assert len({c.wnid for c in m.classes}) == len(m.classes)
    assert manifests.SAFE_NAME_RE.match(m.stem)
    assert m.split.policy in manifests.SPLIT_POLICIES
    if m.split.policy == "files":
        for li in m.listed_images():
            assert li.wnid in m.wnids and li.split in m.split.splits


def test_sample_manifest_loads(workdir):
    m = _load(workdir, SAMPLE_TOML.encode())
    assert m is not None and m.wnids == tuple(WNIDS) and len(m.listed_images()) == 3


@given(st.binary(max_size=400))
def test_manifest_random_bytes(workdir, data):
    m = _load(workdir, data)
    if m is not None:
        _check_manifest(m)


@given(mutated(SAMPLE_TOML.encode(), TOML_ALPHABET))
def test_manifest_mutated(workdir, data):
    m = _load(workdir, data)
    if m is not None:
        _check_manifest(m)


# Structured: any TOML document (a tree of tables, arrays, strings, numbers, booleans), in place
# of what tomllib parsed, reaches the schema checks.
_scalars = st.one_of(st.text(max_size=12), st.integers(-5, 10 ** 12), st.floats(allow_nan=True),
                     st.booleans(), st.sampled_from(WNIDS + ["n0144076", "files", "imagenet", "random",
                                                             "list.csv", "train", "val", "fuzz"]))
_keys = st.sampled_from(sorted(manifests._TOP_KEYS | manifests._SPLIT_KEYS | manifests._CLASS_KEYS
                               | manifests._PUBLISHED_KEYS | manifests._EXTRA_KEYS | {"x"}))
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(_keys, inner, max_size=5)), max_leaves=20)


@st.composite
def toml_documents(draw):
    doc = {"name": "fuzz", "stem": "fuzz", "split": {"policy": "files", "list": "list.csv"},
           "classes": [{"wnid": w} for w in WNIDS]}
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.sampled_from(["top", "split", "class", "new"]))
        key, value = draw(_keys), draw(_values)
        if where == "top":
            doc[key] = value
        elif where == "split" and isinstance(doc.get("split"), dict):
            doc["split"][key] = value
        elif where == "class" and isinstance(doc.get("classes"), list) and doc["classes"]:
            target = doc["classes"][draw(st.integers(0, len(doc["classes"]) - 1))]
            if isinstance(target, dict):
                target[key] = value
        else:
            doc.pop(key, None)
    return doc


@given(toml_documents())
def test_manifest_any_document_structure(workdir, doc):
    with mock.patch.object(manifests.tomllib, "loads", return_value=doc):
        m = _load(workdir, b"# stands for the document above\n")
    if m is not None:
        _check_manifest(m)


# ------------------------------------------------------------------------------ the file list CSV


def _read_list(workdir: Path, data: bytes):
    path = workdir / "list.csv"
    path.write_bytes(data)
    try:
        listed = filelist.read_file_list(path, ("train", "val"), set(WNIDS))
    except UserError as exc:
        assert str(exc).startswith(str(path)) and "\n" not in str(exc), str(exc)
        event("UserError")
        return None
    event("read")
    return listed


def _check_list(listed, data: bytes) -> None:
    members = [li.member for li in listed]
    assert len(set(members)) == len(members)
    assert len({li.filename for li in listed}) == len(listed)
    for li in listed:
        assert li.split in ("train", "val") and li.wnid in WNIDS
        assert filelist.SAFE_NAME_RE.match(li.filename)
    # every image is a row of the file: the reader invents nothing
    text = data.decode("utf-8-sig")
    assert all(m in text for m in members)


@given(st.binary(max_size=300))
def test_csv_random_bytes(workdir, data):
    listed = _read_list(workdir, data)
    if listed is not None:
        _check_list(listed, data)


@given(mutated(SAMPLE_CSV.encode(), CSV_ALPHABET))
def test_csv_mutated(workdir, data):
    listed = _read_list(workdir, data)
    if listed is not None:
        _check_list(listed, data)


# mostly valid parts, so that whole lists often are valid too (then every row must come back)
_rows = st.lists(st.tuples(st.sampled_from(["train", "val"] * 10 + ["test", "", ".."]),
                           st.sampled_from(WNIDS * 10 + ["n0", "N01440764"]),
                           st.sampled_from(["unique"] * 20 + ["a.JPEG/x", ".hidden", "", "a b.JPEG", "0.JPEG"]),
                           st.sampled_from(["agree"] * 20 + ["yes", "", "disagree"])), max_size=6)


@given(_rows, st.sampled_from(["path,is_valid"] * 3 + ["is_valid,path", "path", "paths,is_valid", "path,path"]))
def test_csv_rows_from_parts(workdir, rows, header):
    cols = header.split(",")

    def flag(split, how):
        if how in ("agree", "disagree"):
            return str((split == "val") == (how == "agree"))
        return how

    rows = [(s, w, f"{i}.JPEG" if f == "unique" else f, v) for i, (s, w, f, v) in enumerate(rows)]
    lines = [header] + [",".join(f"{s}/{w}/{f}" if c.startswith("path") else flag(s, v) for c in cols)
                        for s, w, f, v in rows]
    data = ("\n".join(lines) + "\n").encode()
    listed = _read_list(workdir, data)
    if listed is not None:
        _check_list(listed, data)
        assert len(listed) == len(rows)  # a clean list keeps every row, in order
        assert [li.member for li in listed] == [f"{s}/{w}/{f}" for s, w, f, _ in rows]


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


def _read_archive(workdir: Path, data: bytes):
    path = workdir / "archive.tgz"
    path.write_bytes(data)
    with ArchiveStream(path) as stream:
        entries = [(e.name, e.kind, e.size, e.data, e.unsafe) for e in stream.entries()]
        digests = stream.digests()
    assert stream.io_error is None
    assert digests.size == len(data) and digests.sha256 == hashlib.sha256(data).hexdigest()
    assert digests.md5 == hashlib.md5(data).hexdigest()
    event("sound" if stream.problem is None else "problem: " + " ".join(stream.problem.split()[:2]))
    return entries, stream.problem


def _check_against_tarfile(data: bytes, entries) -> None:
    """A stream the reader found sound is one gzip member holding a tar that tarfile reads the same:
    the same members in the same order, and the same bytes for every member whose data it read."""
    tar_bytes = gzip.decompress(data)
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        expected = [(info.name, tar.extractfile(info).read() if info.isfile() else None) for info in tar]
    assert [name for name, *_ in entries] == [name for name, _ in expected]
    for (name, kind, size, payload, unsafe), (_, real) in zip(entries, expected):
        if payload is not None:
            assert kind == "file" and unsafe is None and payload == real, name


def test_valid_archive_reads_clean(workdir):
    data = _valid_archive(workdir)
    entries, problem = _read_archive(workdir, data)
    assert problem is None and len(entries) == 1 + 1 + 1 + 3 + 3  # top, csv, train/, 3 class folders, 3 files
    _check_against_tarfile(data, entries)


@given(st.binary(max_size=600))
def test_archive_random_bytes(workdir, data):
    entries, problem = _read_archive(workdir, data)
    if problem is None:
        _check_against_tarfile(data, entries)


@given(st.data())
def test_archive_mutated(workdir, data):
    original = _valid_archive(workdir)
    damaged = data.draw(mutated(original))
    assume(damaged != original)
    entries, problem = _read_archive(workdir, damaged)
    if problem is None:
        _check_against_tarfile(damaged, entries)


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


@given(_members)
def test_archive_reader_stays_within_its_bounds(workdir, members):
    """Any header sizes, types, payloads and name lengths (declared sizes true, false, negative or
    2^80): the reader ends, with a result or a one-line problem, within the bounds: no name held
    longer than MAX_NAME_BYTES, no member read larger than MAX_MEMBER_BYTES, no more members than
    MAX_MEMBERS, and a peak of traced memory a small multiple of the bounds."""
    import tracemalloc

    from imagenette_build import archive_reader

    data = gzip.compress(_hostile_tar(members), mtime=0)
    path = workdir / "bounds.tgz"
    path.write_bytes(data)
    with mock.patch.multiple(archive_reader, **_SMALL_LIMITS):
        tracemalloc.start()
        try:
            with ArchiveStream(path) as stream:
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
            _check_against_tarfile(data, entries)
        except (tarfile.TarError, ValueError, IndexError, RecursionError):
            pass  # tarfile cannot read what the reader found sound: compared only where it can
