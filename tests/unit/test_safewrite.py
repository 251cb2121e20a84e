"""Files beside the archives (safewrite.py): sums files merged, never clobbered; every file written
under a temporary name that is made afresh and renamed into place; the temporary files of dead
processes of this host removed, and only those."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys

import pytest
from hypothesis import given, strategies as st

from imagenette_build import members, procs, safewrite, sums
from imagenette_build.errors import DataError, UserError
from imagenette_build.safewrite import ArchiveLocks, atomic_write, final_path, partial_path, remove_stale_partials
from imagenette_build.sums import read_sums, update_sums

from .. import faultkit as fk
from ..fuzzkit import event, mutated

SHA_A, SHA_B, SHA_C = "a" * 64, "b" * 64, "c" * 64
MD5_A, MD5_B, MD5_C = "1" * 32, "2" * 32, "3" * 32


def _dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout)


# ------------------------------------------------------------------------------ sums files


def test_sums_lines_are_merged_kept_replaced_and_dropped(tmp_path):
    update_sums(tmp_path, add={"a.tgz": (SHA_A, MD5_A), "b.tgz": (SHA_B, MD5_B)})
    assert (tmp_path / "SHA256SUMS").read_text() == f"{SHA_A}  a.tgz\n{SHA_B}  b.tgz\n"
    assert (tmp_path / "MD5SUMS").read_text() == f"{MD5_A}  a.tgz\n{MD5_B}  b.tgz\n"
    # another build's line is kept, this build's replaced, a new one added in name order
    update_sums(tmp_path, add={"b.tgz": (SHA_C, MD5_C), "0.tgz": (SHA_A, MD5_A)})
    assert read_sums(tmp_path / "SHA256SUMS", 64) == {"0.tgz": SHA_A, "a.tgz": SHA_A, "b.tgz": SHA_C}
    assert list(read_sums(tmp_path / "MD5SUMS", 32)) == ["0.tgz", "a.tgz", "b.tgz"]
    update_sums(tmp_path, drop=lambda name: name != "a.tgz")
    assert read_sums(tmp_path / "SHA256SUMS", 64) == {"a.tgz": SHA_A}
    update_sums(tmp_path, drop=lambda name: True)  # nothing left: no sums file at all
    assert not (tmp_path / "SHA256SUMS").exists() and not (tmp_path / "MD5SUMS").exists()


def test_read_sums_takes_coreutils_lines_and_refuses_anything_else_naming_the_file(tmp_path):
    sums = tmp_path / "SHA256SUMS"
    assert read_sums(sums, 64) == {}  # none yet
    sums.write_text(f"{SHA_A}  two  spaces.tgz\n\n{SHA_B} *binary.tgz\n")
    assert read_sums(sums, 64) == {"two  spaces.tgz": SHA_A, "binary.tgz": SHA_B}
    sums.write_bytes(f"{SHA_A}  a.tgz\n".encode() + b"\xff\xfe  caf\xe9.tgz\n")
    named = re.escape(str(sums))
    with pytest.raises(DataError, match=rf"^{named}: not a UTF-8 text file \(byte 72\); move the file away"):
        read_sums(sums, 64)
    for bad in (f"{SHA_A[:-1]}  short.tgz\n", f"{SHA_A}\tno-two-spaces.tgz\n", "just a line\n"):
        sums.write_text(f"{SHA_B}  fine.tgz\n" + bad)
        with pytest.raises(DataError, match=rf"^{named} line 2: not a '<hash>  <file>' or 'SHA256 \(<file>\) = <hash>' line"):
            read_sums(sums, 64)


@pytest.mark.parametrize("text,expected", [
    # what `sha256sum -c` and `md5sum -c` read, and this tool refused: upper-case hex, BSD tags (--tag)
    (f"{SHA_A.upper()}  a.tgz\n", {"a.tgz": SHA_A}),
    (f"SHA256 (a.tgz) = {SHA_A.upper()}\nSHA256(b (1).tgz)= {SHA_B}\n", {"a.tgz": SHA_A, "b (1).tgz": SHA_B}),
    (f"MD5 (a.tgz) = {MD5_A}\n", {"a.tgz": MD5_A}),
    # a name as `find . | xargs sha256sum` writes it: the file `sha256sum -c` opens
    (f"{SHA_A}  ./a.tgz\n{SHA_B}  .//sub/./b.tgz\n", {"a.tgz": SHA_A, "sub/b.tgz": SHA_B}),
    # escaped names (a backslash first), CRLF, comments, leading blanks, a tab before the type
    (f"\\{SHA_A}  new\\nline\\\\.tgz\r\n# a comment\n  {SHA_B}\t*b.tgz\n", {"new\nline\\.tgz": SHA_A, "b.tgz": SHA_B}),
    (f"\\SHA256 (a\\rb) = {SHA_A}\n", {"a\rb": SHA_A}),
    # BSD's `md5 -r`: one space, set by the first line; names only as coreutils splits them
    (f"{SHA_A} a.tgz\n{SHA_B} b  c.tgz\n", {"a.tgz": SHA_A, "b  c.tgz": SHA_B}),
    # a name with a NEL or a line separator is one line (str.splitlines cut it in two)
    (f"{SHA_A}  a\x85b\u2028c.tgz\n", {"a\x85b\u2028c.tgz": SHA_A}),
    # the same hash twice for one file: no conflict
    (f"{SHA_A}  a.tgz\n{SHA_A.upper()} *./a.tgz\n", {"a.tgz": SHA_A}),
])
def test_read_sums_reads_what_coreutils_reads(tmp_path, text, expected):
    digest_len = len(next(iter(expected.values())))
    sums = tmp_path / "SUMS"
    sums.write_bytes(text.encode())
    assert read_sums(sums, digest_len) == expected
    if shutil.which("sha256sum"):  # and coreutils reads each of these lines (with --strict: all of them)
        r = subprocess.run(["sha256sum" if digest_len == 64 else "md5sum", "-c", "--strict", "-w", sums],
                           cwd=tmp_path, capture_output=True, text=True)
        assert "improperly formatted" not in r.stderr and "no properly formatted" not in r.stderr, r.stderr


@pytest.mark.parametrize("text,why", [
    (f"{SHA_A}  a.tgz\n{SHA_B}  ./a.tgz\n", "lines 1 and 2: two different hashes for 'a.tgz'"),  # a lying line
    (f"SHA256 (a.tgz) = {SHA_A}\n\n{SHA_B.upper()} *a.tgz\n", "lines 1 and 3: two different hashes for 'a.tgz'"),
    (f"{SHA_A}  a.tgz\n{SHA_B} b.tgz\n", "line 2: not a '<hash>  <file>'"),  # coreutils refuses the mix too
    (f"{SHA_A} a.tgz\n{SHA_B}  b.tgz\n", "line 2: not a '<hash>  <file>'"),  # coreutils would read ' b.tgz'
    (f"{SHA_A}  a.tgz\x00junk\n", "line 1: not a '<hash>  <file>'"),  # coreutils would check a.tgz
    (f"\\{SHA_A}  a\\tb.tgz\n", "line 1: not a '<hash>  <file>'"),  # an escape coreutils refuses
    (f"SHA256 () = {SHA_A}\n", "line 1: not a '<hash>  <file>'"),  # no file named
    (f"MD5 (a.tgz) = {MD5_A}\n", "line 1: not a '<hash>  <file>'"),  # an md5 in SHA256SUMS
    (f"SHA256 (a.tgz) = {SHA_A} \n", "line 1: not a '<hash>  <file>'"),
])
def test_a_sums_file_that_coreutils_cannot_read_or_that_contradicts_itself_is_refused(tmp_path, text, why):
    sums = tmp_path / "SHA256SUMS"
    sums.write_bytes(text.encode())
    with pytest.raises(DataError, match=f"^{re.escape(str(sums))} {re.escape(why)}.*; move the file away or fix it$"):
        read_sums(sums, 64)


def test_read_sums_of_one_name_reads_every_line_and_keeps_its_own(tmp_path):
    """What verify asks: the lines of one archive, without a dict of every line of a large file."""
    sums = tmp_path / "SHA256SUMS"
    sums.write_text(f"{SHA_A}  a.tgz\n{SHA_B}  b.tgz\n{SHA_C}  ./b.tgz\nSHA256 (./a.tgz) = {SHA_A.upper()}\n")
    assert read_sums(sums, 64, only="a.tgz") == {"a.tgz": SHA_A}  # (b.tgz's lines disagree: not its concern)
    assert read_sums(sums, 64, only="c.tgz") == {}
    with pytest.raises(DataError, match="lines 2 and 3: two different hashes for 'b.tgz'"):
        read_sums(sums, 64, only="b.tgz")
    sums.write_text(f"{SHA_A}  a.tgz\nnot a line\n")
    with pytest.raises(DataError, match="line 2: not a '<hash>  <file>'"):
        read_sums(sums, 64, only="a.tgz")


def test_the_build_rewrites_other_lines_canonically_and_keeps_what_they_mean(tmp_path):
    sums = tmp_path / "SHA256SUMS"
    sums.write_text(f"# made by hand\nSHA256 (./a.tgz) = {SHA_A.upper()}\n\\{SHA_B} *b\\\\c\\nd.tgz\n")
    update_sums(tmp_path, add={"new.tgz": (SHA_C, MD5_C)})
    assert sums.read_text() == f"{SHA_A}  a.tgz\n\\{SHA_B}  b\\\\c\\nd.tgz\n{SHA_C}  new.tgz\n"
    assert read_sums(sums, 64) == {"a.tgz": SHA_A, "b\\c\nd.tgz": SHA_B, "new.tgz": SHA_C}
    sums.write_text(f"{SHA_A} a.tgz\n{SHA_B}  a.tgz\n")  # refused: the build never guesses which line is meant
    with pytest.raises(DataError, match="line 2: not a '<hash>  <file>'"):
        update_sums(tmp_path, add={"new.tgz": (SHA_C, MD5_C)})
    sums.write_text(f"{SHA_A}  a.tgz\n{SHA_B}  ./a.tgz\n")
    with pytest.raises(DataError, match="lines 1 and 2: two different hashes for 'a.tgz'"):
        update_sums(tmp_path, drop=lambda name: name == "a.tgz")
    assert sums.read_text() == f"{SHA_A}  a.tgz\n{SHA_B}  ./a.tgz\n"


@pytest.mark.fuzz
@given(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), min_size=1, max_size=40),
       st.sampled_from([SHA_A, SHA_B.upper()]))
def test_a_line_the_build_writes_reads_back_as_the_same_name(name, digest):
    """sums_line writes what sums_lines reads back: any name, line breaks and backslashes included."""
    [(_, read_name, read_digest)] = list(sums.sums_lines(sums.sums_line(digest.lower(), name), 64))
    assert (read_name, read_digest) == (sums.normal_name(name), digest.lower())


def test_member_lists_are_read_by_the_same_parser():
    """A member list is a sums file too (`cd <stem> && sha256sum -c ../<stem>.members.sha256`):
    BSD tags and upper-case hex were refused, and `./train/x` was another path than `train/x`."""
    listed = members.parse(f"SHA256 (./train/a.JPEG) = {SHA_A.upper()}\n\\{SHA_B}  val/new\\nline\n", "list")
    assert listed == {"train/a.JPEG": SHA_A, "val/new\nline": SHA_B}
    with pytest.raises(UserError, match=r"^list line 2: 'train/a.JPEG' is listed twice$"):
        members.parse(f"{SHA_A}  train/a.JPEG\n{SHA_B}  ./train/a.JPEG\n", "list")
    with pytest.raises(UserError, match=r"^list line 1: not a '<hash>  <file>' or 'SHA256 \(<file>\) = <hash>' line"):
        members.parse(f"MD5 (train/a.JPEG) = {MD5_A}\n", "list")
    assert members.format_line(SHA_A, "a\\b\nc") == sums.sums_line(SHA_A, "a\\b\nc") == f"\\{SHA_A}  a\\\\b\\nc\n"


# Files named as `sha256sum -c` must read with care; the oracle test below checks lines naming them.
ORACLE_FILES = {"a.tgz": b"a", "two  spaces.tgz": b"b", " lead.tgz": b"c", "*star.tgz": b"d",
                "back\\slash.tgz": b"e", "new\nline.tgz": b"f", "par)en (1).tgz": b"g", "sub/d.tgz": b"h"}
_ORACLE_OUT = re.compile(r"^(.*): (OK|FAILED|FAILED open or read)$")


@st.composite
def _sums_texts(draw):
    """Lines naming ORACLE_FILES in every form coreutils writes (and some it does not), true or lying,
    then a few random edits."""
    lines = []
    for _ in range(draw(st.integers(1, 4))):
        name = draw(st.sampled_from(sorted(ORACLE_FILES)))
        digest = hashlib.sha256(ORACLE_FILES[name] * draw(st.sampled_from([1, 1, 2]))).hexdigest()
        digest = "".join(c.upper() if draw(st.booleans()) else c for c in digest) if draw(st.booleans()) else digest
        shown = draw(st.sampled_from(["", "", "./", ".//", "././"])) + name
        escape = "\n" in shown or draw(st.integers(0, 3)) == 0
        if escape:
            shown = shown.replace("\\", "\\\\").replace("\n", "\\n")
        form = draw(st.sampled_from(["{d}  {n}", "{d} *{n}", "SHA256 ({n}) = {d}", "SHA256({n})= {d}",
                                     "{d} {n}", "{d}\t {n}"]))
        blank = draw(st.sampled_from(["", "", " ", "\t "]))
        lines.append(blank + ("\\" if escape else "") + form.format(d=digest, n=shown))
    text = "".join(line + draw(st.sampled_from(["\n", "\n", "\r\n", "\n\n", "\n# note\n"])) for line in lines)
    if draw(st.booleans()):
        text = draw(mutated(text.encode(), "0123456789abcdefABCDEF \t*\\()=#\r\n./SHA256")).decode()
    return text


@pytest.mark.fuzz
@pytest.mark.skipif(not shutil.which("sha256sum"), reason="needs GNU coreutils' sha256sum")
@given(_sums_texts())
def test_sums_lines_reads_what_sha256sum_c_reads(workdir, text):
    """The oracle: for any text, the lines read here are the lines `sha256sum -c` checks, in order,
    naming the same files (`./a` is `a`); a text refused here has a line sha256sum cannot read
    either, or one it would read in a way a person would not (a mix of the two untagged forms)."""
    for name, data in ORACLE_FILES.items():
        (workdir / name).parent.mkdir(exist_ok=True)
        (workdir / name).write_bytes(data)
    (workdir / "SUMS").write_bytes(text.encode())
    r = subprocess.run(["sha256sum", "-c", "-w", "SUMS"], cwd=workdir, capture_output=True,
                       stdin=subprocess.DEVNULL, timeout=30)  # (bytes: names may hold a carriage return)
    stdout, stderr = r.stdout.decode(), r.stderr.decode(errors="replace")
    improper = {int(n) for n in re.findall(r"SUMS: (\d+): improperly formatted", stderr)}
    try:
        ours = list(sums.sums_lines(text, 64))
    except ValueError as exc:
        refused = int(re.match(r"line (\d+): ", str(exc))[1])
        assert refused in improper or "among" in str(exc), (str(exc), stderr)
        event("refused")
        return
    # coreutils calls a line of blanks improperly formatted; here it is skipped, as an empty line
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    assert improper == {i for i, line in enumerate(lines, start=1) if line and not line.strip(" \t")}, stderr
    checked = []
    for out in stdout.split("\n")[:-1]:
        name, result = _ORACLE_OUT.match(out).groups()
        names = {sums.normal_name(name)}  # as printed; escaped with a backslash first by some versions
        if name.startswith("\\"):
            with contextlib.suppress(ValueError):
                names.add(sums.normal_name(sums._unescape(name[1:], 64)))
        checked.append((names, result))
    expected = [(name, "FAILED open or read" if name not in ORACLE_FILES else
                 "OK" if hashlib.sha256(ORACLE_FILES[name]).hexdigest() == digest else "FAILED")
                for _, name, digest in ours]
    assert len(checked) == len(expected) and all(name in names and result == want for (names, result), (name, want)
                                                 in zip(checked, expected)), (text, stdout, stderr)
    event("read")


def test_a_sums_file_that_cannot_be_read_stops_the_update_and_is_left_as_it_was(tmp_path):
    sums = tmp_path / "SHA256SUMS"
    sums.write_bytes(b"\xff not mine\n")
    with pytest.raises(DataError, match="not a UTF-8 text file"):
        update_sums(tmp_path, add={"a.tgz": (SHA_A, MD5_A)})
    assert sums.read_bytes() == b"\xff not mine\n" and not (tmp_path / "MD5SUMS").exists()


# ------------------------------------------------------------------------------ temporary names


def test_partial_and_final_path_round_trip(tmp_path):
    for name in ("imagenette2-160.tgz", "SHA256SUMS", "x.members.sha256", "imagenette2-160-wds", ".hidden"):
        path = tmp_path / name
        partial = partial_path(path)
        assert partial.parent == tmp_path and partial.name == f".{name}.partial-{procs.host()}-{os.getpid()}"
        assert final_path(partial) == path
    assert final_path(tmp_path / "imagenette2-160.tgz") == tmp_path / "imagenette2-160.tgz"  # not a partial
    assert final_path(tmp_path / ".x.partial-host") == tmp_path / ".x.partial-host"  # no pid: not one either
    folder = partial_path(tmp_path / "imagenette2-160-parquet")  # a file in an output's temporary folder
    assert final_path(folder / "README.md") == tmp_path / "imagenette2-160-parquet" / "README.md"
    assert final_path(partial_path(folder / "croissant.json")) == tmp_path / "imagenette2-160-parquet" / "croissant.json"


def test_atomic_write_replaces_the_file_whole(tmp_path):
    path = tmp_path / "report.json"
    path.write_text("old\n")
    atomic_write(path, b"new\n")
    assert path.read_bytes() == b"new\n" and os.listdir(tmp_path) == ["report.json"]


def test_atomic_write_that_fails_leaves_nothing_and_names_the_file(tmp_path, monkeypatch):
    """The rename fails (the final name is a folder): no temporary file stays, and the OSError names
    the final path, not the temporary one."""
    path = tmp_path / "report.json"
    (path / "in-the-way").mkdir(parents=True)
    with pytest.raises(OSError) as exc:
        atomic_write(path, b"{}\n")
    assert exc.value.filename == str(path)
    assert os.listdir(tmp_path) == ["report.json"] and path.is_dir()
    # interrupted (Ctrl-C) in the middle of the write: nothing left either, the interrupt goes on
    monkeypatch.setattr(safewrite.os, "fsync", lambda fd: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "other.json", b"{}\n")
    assert os.listdir(tmp_path) == ["report.json"]


def test_only_dead_processes_of_this_host_lose_their_temporary_files(tmp_path):
    dead, host = _dead_pid(), procs.host()
    stale_file = tmp_path / f".a.tgz.partial-{host}-{dead}"
    stale_folder = tmp_path / f".a-wds.partial-{host}-{dead}"  # a sharded output's temporary folder
    live = tmp_path / f".b.tgz.partial-{host}-{os.getpid()}"
    elsewhere = tmp_path / f".c.tgz.partial-another.host-{dead}"
    not_partial = tmp_path / f"a.tgz.partial-{host}-{dead}"  # not hidden: not a temporary name
    for p in (stale_file, live, elsewhere, not_partial):
        p.write_bytes(b"half")
    (stale_folder / "train-00000.tar").parent.mkdir()
    (stale_folder / "train-00000.tar").write_bytes(b"half")
    removed = remove_stale_partials(tmp_path)
    assert sorted(removed) == sorted([stale_file.name, stale_folder.name])
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in (live, elsewhere, not_partial))
    assert remove_stale_partials(tmp_path / "missing") == []


# ------------------------------------------------------------------------------ locks


def test_an_archive_is_written_by_one_build_at_a_time(tmp_path):
    archive = tmp_path / "x.tgz"
    first = ArchiveLocks([archive])
    refused = rf"^{re.escape(str(archive))}: another build is writing it \(process {os.getpid()}\); wait for it to end"
    with pytest.raises(DataError, match=refused + ", or build into another --out$"):
        ArchiveLocks([tmp_path / "y.tgz", archive])
    assert os.listdir(tmp_path) == [".x.tgz.lock"]  # the refused build let go of y's lock too
    first.release()
    assert os.listdir(tmp_path) == []
    ArchiveLocks([archive]).release()  # free again


def test_temporary_files_are_never_written_through_a_planted_symlink(tmp_path):
    """The temporary names (`.<name>.partial-<host>-<pid>`) can be guessed in a shared folder: a
    symlink planted there had the report, the sums files and the archive written through it, outside
    the output folder. They are now made afresh (O_EXCL | O_NOFOLLOW, after removing the name)."""
    from imagenette_build.safewrite import atomic_write, partial_path
    from imagenette_build.tarwriter import ArchiveWriter

    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    out = tmp_path / "out"
    out.mkdir()
    report = out / "x.json"
    partial_path(report).symlink_to(victim)
    atomic_write(report, b"{}\n")
    archive = out / "x.tgz"
    partial_path(archive).symlink_to(victim)
    partial_path(out / "x.members.sha256").symlink_to(victim)
    writer = ArchiveWriter(archive, "x", 0)
    writer.add_file("a.txt", b"a")
    writer.close()
    writer.commit()
    writer.commit_members()
    assert victim.read_text() == "precious\n"
    assert report.read_bytes() == b"{}\n" and fk.archive_is_complete(archive)
    assert sorted(os.listdir(out)) == ["x.json", "x.members.sha256", "x.tgz"]
