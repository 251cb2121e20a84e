"""Hostile and odd input on verify's side: archives whose headers, members or names
declare far more than any dataset holds, GNU sparse members, broken tar headers, control characters
in names, several gzip members, a kill -9, and hostile files beside the archive (build report,
member list). Each ends in a one-line problem (or a one-line error, exit 2) within a bounded time
and a bounded peak memory, measured in a child process.

The hostile archives are made here, small: each piece of a stream is its own deflate blocks,
ended by a full flush, so a MiB of zeros compresses to the same 1 kB every time and an archive
that holds a GiB takes a MB and no time to write."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import signal
import struct
import subprocess
import sys
import tarfile
import threading
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image

from imagenette_build import archive_reader
from imagenette_build.archive_reader import ArchiveStream
from imagenette_build.engine import ordered_map
from imagenette_build.verifier import FIRST_FEW, RecipeGrid, VerifyOptions, check as run_check
from imagenette_build.verifier.checks import MemberCheck
from imagenette_build.verifier.tally import ImageTally

from .. import faultkit as fk
from .test_interrupt import _descendants, _describe_processes, _wait_gone

MIB = 1 << 20
GIB = 1 << 30
TIMEOUT = 120  # seconds for one verify: a hang must fail the test, not stop the suite
GUARD = 2 * GIB  # RLIMIT_AS of every measured run: a read without a bound fails in the child, not the machine
WNID = "n01440764"


# ------------------------------------------------------------------------------ making hostile archives


class GzipFile:
    """A gzip file made a piece at a time (see the module's docstring)."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.crc = 0
        self.length = 0

    def add(self, data: bytes) -> GzipFile:
        deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.pieces.append(deflate.compress(data) + deflate.flush(zlib.Z_FULL_FLUSH))
        self.crc = zlib.crc32(data, self.crc)
        self.length += len(data)
        return self

    def zeros(self, mib: int) -> GzipFile:
        block = bytes(MIB)
        deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        piece = deflate.compress(block) + deflate.flush(zlib.Z_FULL_FLUSH)
        for _ in range(mib):
            self.pieces.append(piece)
            self.crc = zlib.crc32(block, self.crc)
        self.length += mib * MIB
        return self

    def write(self, path: Path) -> Path:
        path.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + b"".join(self.pieces) + b"\x03\x00"
                         + struct.pack("<II", self.crc, self.length & 0xFFFFFFFF))
        return path


def header(name: str, type: bytes = tarfile.REGTYPE, size: int = 0, fmt: int = tarfile.GNU_FORMAT,
           pax: dict | None = None) -> bytes:
    """The header block(s) of one member, by tarfile (declaring any size, whatever follows)."""
    info = tarfile.TarInfo(name)
    info.type, info.size = type, size
    if pax:
        info.pax_headers = pax
    return info.tobuf(format=fmt, encoding="utf-8", errors="surrogateescape")


def padded(data: bytes) -> bytes:
    return data + bytes(-len(data) % tarfile.BLOCKSIZE)


def pax_record(key: str, value: str) -> bytes:
    body = f" {key}={value}\n".encode()
    n = len(body) + 1
    while len(str(n)) + len(body) != n:
        n += 1
    return str(n).encode() + body


def with_field(block: bytes, offset: int, data: bytes) -> bytes:
    """A header block with `data` written at `offset`, its checksum made right again."""
    block = bytearray(block)
    block[offset:offset + len(data)] = data
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


END = bytes(2 * tarfile.BLOCKSIZE)


def jpeg(size: tuple[int, int] = (64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (120, 60, 30)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def tar_of(members: list[tuple[str, bytes]], fmt: int = tarfile.GNU_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, encoding="utf-8", errors="surrogateescape") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def good_tar(stem: str) -> bytes:
    return tar_of([(f"{stem}/train/{WNID}/{WNID}_{i}.JPEG", jpeg((64 + i, 48))) for i in range(3)])


# ------------------------------------------------------------------------------ running verify


_MEASURE = r"""
import os, resource, sys
limit, report = int(sys.argv[1]), sys.argv[2]
pid = os.fork()
if pid == 0:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    os.execv(sys.executable, [sys.executable, "-m", "imagenette_build.cli", *sys.argv[3:]])
_, status, usage = os.wait4(pid, 0)
with open(report, "w") as f:
    f.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def measured(tmp_path: Path, *args) -> tuple[subprocess.CompletedProcess, int]:
    """The CLI with `args`, and the peak RSS in MiB of the largest of its processes (verify and its
    workers). It runs forked from a small launcher: a child forked from this test process would
    start with this process's resident pages as its peak. GUARD bounds its address space."""
    peak = tmp_path / "peak-rss-kib"
    r = subprocess.run([sys.executable, "-c", _MEASURE, str(GUARD), str(peak), *map(str, args)],
                       capture_output=True, text=True, timeout=TIMEOUT, preexec_fn=fk.default_sigint)
    return r, int(peak.read_text()) >> 10


def problem_lines(stdout: str) -> list[str]:
    return [ln[len("      - "):] for ln in stdout.splitlines() if ln.startswith("      - ")]


def read_stream(path: Path) -> tuple[list, str | None]:
    """Every entry as (name, kind, size, data or None, unsafe), and the stream's problem."""
    with ArchiveStream(path) as stream:
        entries = [(e.name, e.kind, e.size, e.data, e.unsafe) for e in stream.entries()]
    assert stream.io_error is None
    return entries, stream.problem


def check(path: Path, **kw):
    return run_check(VerifyOptions(path, jobs=1, quiet=True, grid=RecipeGrid(sample=0), **kw))


def level(report, name):
    return next(lv for lv in report.levels if lv.name == name)


# ------------------------------------------------------------------------------ header sizes


@pytest.mark.parametrize("type,what", [
    (tarfile.XHDTYPE, "pax header"),
    (tarfile.XGLTYPE, "pax global header"),
    (tarfile.SOLARIS_XHDTYPE, "Solaris extended header"),
    (tarfile.GNUTYPE_LONGNAME, "GNU long name header"),
    (tarfile.GNUTYPE_LONGLINK, "GNU long link name header"),
])
def test_extension_header_declaring_a_gib_is_refused_before_it_is_read(tmp_path, type, what):
    """A pax header declaring 1 GiB (a 1 MB .tgz) took 3.1 GB: tarfile reads the payload whole. Here
    it holds 256 MiB of zeros (the code before the fix: 578 MiB; with 1 GiB, a MemoryError under GUARD)."""
    archive = GzipFile().add(header("x/././@LongLink", type, GIB)).zeros(256).add(END).write(tmp_path / "x.tgz")
    r, peak = measured(tmp_path, "verify", archive, "-q", "-j", "2")
    assert r.returncode == 1 and r.stderr == "", r.stderr[-2000:]
    assert problem_lines(r.stdout)[0] == (f"archive stream: a {what} at offset 0 of the tar declares 1,073,741,824 "
                                          "bytes, more than the 1,048,576 verify reads")
    assert peak < 200, f"peak RSS {peak} MiB"


def _sparse_old_gnu_truncated() -> bytes:
    """An old GNU sparse member ('S') whose map says more extension blocks follow; none do."""
    return with_field(header(f"t/train/{WNID}/s.JPEG", tarfile.GNUTYPE_SPARSE, 0), 482, b"\1")


def _pax(records: bytes, then: bytes = b"", type: bytes = tarfile.XHDTYPE) -> bytes:
    return header("t/@PaxHeader", type, len(records)) + padded(records) + then


def _sparse_10_endless_map() -> bytes:
    """A pax 1.0 sparse member whose map claims a billion numbers; tarfile read on past the member's
    end for them and ended in a ValueError."""
    records = b"".join(pax_record(k, v) for k, v in (("GNU.sparse.major", "1"), ("GNU.sparse.minor", "0"),
                                                     ("GNU.sparse.name", f"t/train/{WNID}/s.JPEG"),
                                                     ("GNU.sparse.realsize", "10")))
    data = padded(b"1000000000\n" + b"1\n" * 1000)
    return _pax(records, header("t/GNUSparseFile.0/s.JPEG", size=len(data)) + data)


@pytest.mark.parametrize("tar,problem", [
    # a chain of extension headers was read recursively: RecursionError
    (b"".join(_pax(pax_record("comment", str(i))) for i in range(2000)) + header("t/a") + END,
     "more than 8 extension headers in a row (the next at offset 8,192 of the tar)"),
    # ValueError from tarfile: a pax record length of 5,000 digits, GNU sparse sizes that are not numbers
    (_pax(b"9" * 5000 + b" path=x\n", header("t/a")) + END,  # (Python 3.13's tarfile refuses it itself)
     ("unreadable tar header at offset 0 (Exceeds the limit",
      "not a valid tar stream inside the gzip: invalid header")),
    (_pax(pax_record("GNU.sparse.realsize", "abc"), header("t/a")) + END,
     "unreadable tar header at offset 0 (invalid literal"),
    # IndexError from tarfile: an old GNU sparse map cut short (the stream ends after its header)
    (_sparse_old_gnu_truncated(),
     "not a valid tar stream inside the gzip: unexpected end of data in a GNU sparse header"),
    # a negative size (base-256), which tarfile would seek backwards to skip
    (with_field(header("t/a"), 124, b"\xff" * 12) + END, "member t/a declares a negative size (-1 bytes)"),
    # pax global headers apply to every later member: they add up
    (b"".join(_pax(pax_record(f"k{i}", "v" * 3000), type=tarfile.XGLTYPE) for i in range(3)) + END,
     "pax global headers of more than 8,192 bytes in all (the last at offset 7,168 of the tar)"),
])
def test_broken_tar_headers_are_one_line_problems(tmp_path, tar, problem):
    archive = GzipFile().add(tar).write(tmp_path / "t.tgz")
    _, found = read_stream(archive)
    assert found is not None and found.startswith(problem), found


@pytest.mark.parametrize("tar", [
    _sparse_10_endless_map(),
    _pax(pax_record("GNU.sparse.map", "0,x,5") + pax_record("GNU.sparse.name", f"t/train/{WNID}/s.JPEG"),
         header("t/s")),
])
def test_gnu_sparse_members_are_refused_unread(tmp_path, tar):
    """Their maps were read by tarfile: ValueError tracebacks, and a map of any count held whole."""
    archive = GzipFile().add(tar + END).write(tmp_path / "t.tgz")
    entries, problem = read_stream(archive)
    assert problem is None
    assert [(name, kind, data, unsafe) for name, kind, _, data, unsafe in entries] == [
        (f"t/train/{WNID}/s.JPEG", "sparse file", None, "sparse file")]


def test_sparse_files_written_by_gnu_tar_are_unsafe_members(tmp_path):
    """Every sparse format GNU tar writes is read (framing intact) and refused unread."""
    src = tmp_path / "sp"
    (src / "train" / WNID).mkdir(parents=True)
    with open(src / "train" / WNID / "hole.JPEG", "wb") as f:
        f.truncate(4 * MIB)
        f.write(b"end")
    (src / "train" / WNID / "after.JPEG").write_bytes(jpeg())
    for fmt in (["--format=gnu"], *(["--format=posix", f"--sparse-version={v}"] for v in ("0.0", "0.1", "1.0"))):
        archive = tmp_path / "sp.tgz"
        r = subprocess.run(["tar", "--sparse", *fmt, "-czf", archive, "-C", tmp_path, "sp"], capture_output=True)
        if r.returncode != 0:
            pytest.skip(f"GNU tar is not here or cannot write {fmt}: {r.stderr[:200]!r}")
        entries, problem = read_stream(archive)
        assert problem is None, fmt
        kinds = {name: (kind, unsafe, data is not None) for name, kind, _, data, unsafe in entries}
        assert kinds[f"sp/train/{WNID}/hole.JPEG"] == ("sparse file", "sparse file", False), fmt
        assert kinds[f"sp/train/{WNID}/after.JPEG"] == ("file", None, True), fmt


def test_member_declaring_more_than_the_stream_holds_ends_the_walk(tmp_path):
    """A GNU header can declare 2^88 bytes: tarfile skipped on past the stream's end forever (the
    code before the fix never ended: the timeout fails it)."""
    archive = GzipFile().add(header(f"t/train/{WNID}/a.JPEG", size=2 ** 80) + b"x" * 100).write(tmp_path / "t.tgz")
    r = subprocess.run(fk.cli_command("verify", archive, "-q", "-j", "1"), capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stderr == ""
    assert problem_lines(r.stdout)[0] == ("archive stream: truncated: the tar ends inside a member's data (the gzip "
                                          f"stream itself is complete) (last member read: t/train/{WNID}/a.JPEG)")


# ------------------------------------------------------------------------------ bytes in memory


def zero_members(path: Path, count: int, mib: int) -> Path:
    """An archive of `count` members of `mib` MiB of zeros, in <stem>/train/<wnid>/."""
    gz = GzipFile()
    for i in range(count):
        gz.add(header(f"{path.name.split('.')[0]}/train/{WNID}/{i}.JPEG", size=mib * MIB)).zeros(mib)
    return gz.add(END).write(path)


def test_members_larger_than_an_image_are_skipped_unread(tmp_path):
    """Members of 250 MiB of zeros took 5.6 GB with --jobs 2 (read whole, 8 x jobs tasks in flight).
    Above 64 MiB a member is refused and skipped in the stream (before the fix: 537 MiB here)."""
    r, peak = measured(tmp_path, "verify", zero_members(tmp_path / "big.tgz", 3, 100), "-q", "-j", "2")
    assert r.returncode == 1 and r.stderr == ""
    assert (f"3 members too large to be images: big/train/{WNID}/0.JPEG (104,857,600 bytes), "
            f"big/train/{WNID}/1.JPEG (104,857,600 bytes), big/train/{WNID}/2.JPEG (104,857,600 bytes)"
            in problem_lines(r.stdout))
    assert peak < 200, f"peak RSS {peak} MiB"


def test_member_bytes_in_flight_are_bounded_in_bytes(tmp_path):
    """Members just under the 64 MiB bound are read and sent to the workers; the tasks in flight are
    bounded in bytes (IN_FLIGHT_BYTES_PER_JOB), not by 8 x jobs tasks (measured: 297 MiB; before the
    fix 526)."""
    r, peak = measured(tmp_path, "verify", zero_members(tmp_path / "z.tgz", 6, 60), "-q", "-j", "2")
    assert r.returncode == 1 and r.stderr == ""
    assert problem_lines(r.stdout)[0].startswith(f"6 members do not decode: z/train/{WNID}/0.JPEG")
    assert peak < 400, f"peak RSS {peak} MiB"


def test_window_of_tasks_is_bounded_by_weight():
    """ordered_map with window_bytes: the tasks taken from the iterator and not yet answered never
    weigh more than the limit plus one task, whatever the count window allows."""
    weights = [60, 60, 10, 200, 30, 30, 30, 30, 5]
    taken, answered, held = [], [], []

    def tasks():
        for i, w in enumerate(weights):
            taken.append(w)
            held.append(sum(taken) - sum(answered))
            yield (i,)

    results = []
    for i in ordered_map(lambda i: i, tasks(), 2, "threading", window=8, window_bytes=(100, lambda t: weights[t[0]])):
        answered.append(weights[i])
        results.append(i)
    assert results == list(range(len(weights)))
    # windows [60, 60], [10, 200], [30, 30, 30, 30], [5]: each ends once it weighs 100, and is taken
    # only when every answer of the one before is in
    assert held == [60, 120, 10, 210, 30, 60, 90, 120, 5]


# ------------------------------------------------------------------------------ names


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_long_names_are_refused_and_not_held(tmp_path, fmt):
    """3,000 members with 512 KiB names (1.9 MB .tgz) took 6.3 GB: every name was kept. Names longer
    than 4,096 bytes are refused, and only their first 200 characters are kept to name them."""
    gz = GzipFile()
    for i in range(300):
        gz.add(header(f"names/{i:05d}/" + "a" * (512 << 10), fmt=fmt))
    archive = gz.add(END).write(tmp_path / "names.tgz")
    r, peak = measured(tmp_path, "verify", archive, "-q", "-j", "2")
    assert r.returncode == 1 and r.stderr == ""
    line = problem_lines(r.stdout)[0]
    first = "names/00000/" + "a" * 188
    assert line.startswith(f"300 unsafe members (never extract this archive): {first}... (524,300 characters) "
                           "(a name of 524,300 bytes, longer than the 4,096 verify reads), ")
    assert line.endswith("... (295 more)") and len(line) < 3000
    assert peak < 200, f"peak RSS {peak} MiB"


@pytest.mark.parametrize("limit,value,problem", [
    ("MAX_MEMBERS", 50, "more than 50 members, more than verify holds; the rest was not read"),
    ("MAX_NAMES_BYTES", 3000, "member names of more than 3,000 bytes in all (at member 31), more than verify holds"),
])
def test_names_held_are_bounded(tmp_path, monkeypatch, limit, value, problem):
    """The names every member leaves in memory (duplicates, the member lists) are bounded in count
    and in bytes; here with the bounds lowered, the refusal is one line."""
    monkeypatch.setattr(archive_reader, limit, value)
    archive = GzipFile().add(tar_of([(f"n/{i:096d}", b"") for i in range(100)])).write(tmp_path / "n.tgz")
    entries, found = read_stream(archive)
    assert found is not None and found.startswith(problem), found
    assert len(entries) < 51


def test_problem_lists_keep_the_first_few_and_a_count():
    """A million bad members were a million strings in each problem list; now the first few and a
    count, which is all a problem line shows."""
    tally = ImageTally(160)
    for i in range(10_000):
        tally.add(MemberCheck(f"t/train/{WNID}/{i}.JPEG", error="not an image Pillow can read"))
    assert len(tally.errors) == 10_000 and len(list(tally.errors)) == FIRST_FEW
    lv = tally.level(stream_complete=True)
    assert lv.problems[0].startswith(f"10000 members do not decode: t/train/{WNID}/0.JPEG (not an image")
    assert lv.problems[0].endswith(", ... (9995 more)")
    assert lv.data["decode_errors"] == 10_000 and len(lv.data["decode_errors_first"]) == FIRST_FEW


# ------------------------------------------------------------------------------ kill -9


def test_kill_9_of_verify_ends_its_workers(tmp_path):
    """Workers of a verify killed with kill -9 stayed (loky's idle timeout is 5 minutes); they now
    watch verify as a build's workers watch the build, and end within a second or two."""
    big = io.BytesIO()
    Image.new("RGB", (3000, 3000), (10, 20, 30)).save(big, format="PNG")  # slow to decode, small to store
    archive = tmp_path / "slow.tgz"
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        for i in range(200):
            info = tarfile.TarInfo(f"slow/train/{WNID}/{i}.png")
            info.size = len(big.getvalue())
            tar.addfile(info, io.BytesIO(big.getvalue()))
    proc = subprocess.Popen(fk.cli_command("verify", archive, "-q", "-j", "2"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, preexec_fn=fk.default_sigint)
    try:
        deadline = time.monotonic() + 60
        while len(workers := _descendants(proc.pid)) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert len(workers) >= 2 and proc.poll() is None, "verify ended before its workers could be seen"
        time.sleep(0.5)  # into the decoding (all of it takes seconds)
        workers = _descendants(proc.pid)
        assert proc.poll() is None, "verify ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    left = _wait_gone(workers, 10)
    assert not left, f"workers left running: {_describe_processes(left)}"


# ------------------------------------------------------------------------------ files beside the archive


@pytest.fixture
def archive(tmp_path) -> Path:
    """A small sound archive (3 JPEGs) with nothing beside it."""
    folder = tmp_path / "dist"
    folder.mkdir()
    return GzipFile().add(good_tar("good")).add(END).write(folder / "good.tgz")


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _dev_zero(path: Path) -> None:
    path.symlink_to("/dev/zero")


def _huge(path: Path) -> None:
    with open(path, "wb") as f:
        f.truncate(17 * MIB)


@pytest.mark.parametrize("make,problem", [
    (lambda p: p.write_text("[" * 100_000), "good.json: not a readable build report (maximum recursion depth"),
    (lambda p: p.write_text('{"size": "' + "9" * 5000 + '", "sha256": [[1]]}'),
     "good.json has a sha256 that is neither a number nor a string"),
    (lambda p: p.write_text('{"fidelity": [1], "options": "x", "archive_bytes": 0}'), "good.json says archive_bytes 0"),
    (lambda p: p.write_text('{"size": "²", "archive": "good.tgz"}'), "good.json describes an archive without its"),
    (lambda p: p.write_text('{"archive_bytes": 1' + "0" * 5000 + "}"),
     "good.json: not a readable build report (Exceeds"),
    (_fifo, "good.json: cannot read: not a regular file: a named pipe"),
    (_dev_zero, "good.json: cannot read: not a regular file: a character device"),
    (_huge, "good.json: cannot read: 17,825,792 bytes, more than a build report may have (16,777,216)"),
])
def test_hostile_build_report_is_a_one_line_problem(archive, make, problem):
    """RecursionError, ValueError and AttributeError tracebacks before; a FIFO or a device was
    silently taken for no report."""
    make(archive.with_name("good.json"))
    report = check(archive)
    identity = level(report, "identity")
    assert not identity.passed and any(problem in p for p in identity.problems), identity.problems
    assert all(p.startswith("good.json") and "\n" not in p for p in identity.problems)  # (and a missing md5, ...)
    assert report.target.size is None  # a size of 5,000 digits is not taken for one


def _true_fields(archive: Path) -> dict:
    data = archive.read_bytes()
    return {"archive": archive.name, "archive_bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "md5": hashlib.md5(data).hexdigest(), "md5_first_mib": hashlib.md5(data[:MIB]).hexdigest()}


LANCZOS = {"filter": "lanczos", "quality": 90, "rounding": "round", "decode": "full"}


@pytest.mark.parametrize("drop,extra,problem", [
    (None, {}, None),  # a true report: matches
    ({"archive_bytes", "sha256", "md5"}, {}, "good.json describes an archive without its archive_bytes, sha256, md5"),
    ({"md5"}, {}, "good.json describes an archive without its md5: not a build report of good.tgz"),
    ({"archive", "archive_bytes", "sha256", "md5_first_mib"}, {}, "without its archive_bytes, sha256"),
    (set(), {"md5_first_mib": "0" * 32}, f"good.json says md5_first_mib {'0' * 32}, the file has "),
])
def test_a_report_that_names_the_archive_must_hold_its_size_and_hashes(archive, drop, extra, problem):
    """A report that said nothing of the archive's hashes was reported as 'size, sha256 and md5
    match' (the missing keys were skipped)."""
    fields = _true_fields(archive)
    archive.with_name("good.json").write_text(json.dumps(
        {k: v for k, v in fields.items() if k not in (drop or set())} | extra))
    identity = level(check(archive), "identity")
    if problem is None:
        assert identity.passed and "good.json: size, sha256 and md5 match" in identity.notes
    else:
        assert not identity.passed and [p for p in identity.problems if problem in p], identity.problems
        assert not [n for n in identity.notes if "match" in n], identity.notes


@pytest.mark.parametrize("report", [
    {},
    {"archive": None, "stem": "good", "outputs": {"parquet": {"folder": "good-parquet", "files": []}},
     "options": {"recipe": LANCZOS}, "fidelity": {"published_bytes_possible": False}},
])
def test_a_report_that_describes_no_archive_is_not_this_archives_report(archive, report):
    """A crafted `{}`, or the report of a stem built only as parquet or webdataset ("archive": null):
    verify said 'size, sha256 and md5 match', and took its recipe for the archive's (which turns
    members that differ from the published list into a note)."""
    archive.with_name("good.json").write_text(json.dumps(report))
    result = check(archive)
    identity = level(result, "identity")
    assert identity.passed and identity.data["build_report"] == "not about this archive"
    assert ("good.json does not describe good.tgz: it names no archive, size or hash (the report of a parquet or "
            "webdataset build, or of none)") in identity.notes
    assert not [n for n in identity.notes if "match" in n and "good.json" in n], identity.notes
    assert result.target.report is None and result.target.claims_published_images
    assert result.target.recipe.published and "no build report" in result.target.recipe_note


@pytest.mark.parametrize("listing,problem", [
    ("a" * 64 + "  train/" + "x" * 5000 + "\n",
     " line 1: a path of 5,006 bytes, longer than a member name may be (4,096)"),
    ("".join(f"{'a' * 64}  train/{i}\n" for i in range(30)),
     ": more than 20 members listed, more than an archive verify reads"),
])
def test_hostile_member_list_is_a_one_line_problem(archive, monkeypatch, listing, problem):
    monkeypatch.setattr("imagenette_build.members.MAX_MEMBERS", 20)
    member_list = archive.with_name("good.members.sha256")
    member_list.write_text(listing)
    digest = hashlib.sha256(listing.encode()).hexdigest()
    named = {"members_sha256": {"file": member_list.name, "sha256": digest}}
    archive.with_name("good.json").write_text(json.dumps(named))
    members = level(check(archive), "members")
    assert not members.passed and members.problems == [f"{member_list}{problem}"]


def test_archive_that_is_a_fifo_is_refused_not_waited_on(tmp_path):
    fifo = tmp_path / "a.tgz"
    os.mkfifo(fifo)
    r = subprocess.run(fk.cli_command("verify", fifo, "-q"), capture_output=True, text=True, timeout=30)
    fk.one_line_error(r, 2, "a.tgz: is not a file")
    outcome = []
    reader = threading.Thread(target=lambda: outcome.append(_open_stream(fifo)), daemon=True)
    reader.start()
    reader.join(10)
    if reader.is_alive():  # the code before the fix: open() waits for a writer; give it one, to end the thread
        with open(fifo, "wb"):
            pass
        pytest.fail("ArchiveStream waited on a FIFO")
    assert outcome == [f"{fifo}: cannot read: not a regular file: a named pipe"]


def _open_stream(path: Path) -> str:
    try:
        ArchiveStream(path).close()
    except Exception as exc:  # noqa: BLE001 - the message is what is checked
        return str(exc)
    return "opened"


# ------------------------------------------------------------------------------ gzip members, names


def test_several_gzip_members_are_one_stream(archive):
    """`cat a.gz b.gz` is one gzip file to gzip and tar; verify said "truncated". Garbage after the
    last member, and a damaged member, are still found."""
    tar = good_tar("good") + END
    cuts = [0, 700, 5000, len(tar)]
    parts = [gzip.compress(tar[a:b], mtime=0) for a, b in zip(cuts, cuts[1:])]
    for data, problem in ((b"".join(parts), None),
                          (b"".join(parts) + gzip.compress(b""), None),  # an empty last member
                          (b"".join(parts) + b"junk", "4 bytes of garbage after the end of the gzip stream"),
                          (parts[0] + parts[1][:-8] + bytes(8) + parts[2], "incorrect data check")):
        archive.write_bytes(data)
        report = check(archive)
        stream_problem = level(report, "structure").data["stream_problem"]
        if problem is None:
            assert gzip.decompress(data) == tar  # Python's gzip reads it so too
            assert report.passed and stream_problem is None, [lv.problems for lv in report.levels]
            assert level(report, "images").data["checked"] == 3
        else:
            assert problem in stream_problem


def test_control_characters_in_member_names_are_escaped_in_text_output(tmp_path):
    """A name with a line break forged a report line, one with ESC moved the terminal's cursor; a
    name that is not UTF-8 stopped the text output. Every line is escaped; JSON keeps the names."""
    names = [f"c/train/{WNID}/a\nFAIL  forged\n.JPEG", f"c/train/{WNID}/\x1b[2Jb.JPEG", f"c/train/{WNID}/c\rd.JPEG",
             f"c/train/{WNID}/\udcffe\\.JPEG", f"c/train/{WNID}/f\u2028g.JPEG"]
    archive = GzipFile().add(tar_of([(n, b"not an image") for n in names], fmt=tarfile.PAX_FORMAT) + END
                             ).write(tmp_path / "c.tgz")
    r = subprocess.run(fk.cli_command("verify", archive, "-q", "-j", "1"), capture_output=True, timeout=60)
    assert r.returncode == 1 and r.stderr == b"", r.stderr
    text = r.stdout.decode("ascii")  # nothing but escapes outside ASCII's printable range here
    assert "\x1b" not in text and "\r" not in text
    starts = ("verify ", "PASS  ", "FAIL  ", "      - ", "        ", "FAILED: ")
    assert all(ln.startswith(starts) for ln in text.splitlines())
    assert not any(ln.startswith("FAIL  forged") for ln in text.splitlines())
    # control characters, bytes that are not UTF-8 and backslashes are names out of normal form
    line = next(ln for ln in problem_lines(text) if "unsafe members" in ln)
    for shown in ("a\\x0aFAIL  forged\\x0a.JPEG", "\\x1b[2Jb.JPEG", "c\\x0dd.JPEG", "\\xffe\\\\.JPEG"):
        assert shown in line, shown
    line = next(ln for ln in problem_lines(text) if "do not decode" in ln)
    assert "f\\u2028g.JPEG" in line
    r = subprocess.run(fk.cli_command("verify", archive, "-q", "-j", "1", "--json"), capture_output=True, timeout=60)
    doc = json.loads(r.stdout)
    unsafe = next(lv for lv in doc["levels"] if lv["level"] == "structure")["unsafe"]
    assert [s.rsplit(" (", 1)[0] for s in unsafe] == names[:4]
    shown = next(lv for lv in doc["levels"] if lv["level"] == "images")["decode_errors_first"]
    assert [s.rsplit(" (", 1)[0] for s in shown] == names[4:]
