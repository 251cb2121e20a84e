"""`extract` and the files a user names, tried as an attacker would: names out of normal form,
hostile archive names, races on the destination, special files in the way, leftovers, and load
lines that would run code. The property: after `extract`, nothing outside `--into` was created,
changed or removed, whatever the archive."""

from __future__ import annotations

import ast
import io
import os
import stat
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import imagenette_build as ib
from imagenette_build import extractor, procs
from imagenette_build.safewrite import partial_path

from .. import faultkit as fk
from ..conftest import run_cli
from ..unit.test_safepath import hostile_names

STEM = "ds"


def tgz(path: Path, members: list[tuple[str, bytes | None]], fmt: int = tarfile.PAX_FORMAT) -> Path:
    """An archive of `members` (name, bytes; None: a folder), names stored exactly as given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz", format=fmt) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.mtime = 1_000_000
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def snapshot(folder: Path, skip: Path) -> dict[str, tuple]:
    """Every path under `folder` except below `skip`: (kind, mode, size, mtime, bytes or link)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if here / d != skip]
        for name in dirnames + filenames:
            p = here / name
            st_ = os.lstat(p)
            content = p.read_bytes() if stat.S_ISREG(st_.st_mode) else os.readlink(p) if p.is_symlink() else None
            if stat.S_ISDIR(st_.st_mode):  # (its time changes with what is made and removed in it: seen there)
                out[str(p)] = (stat.S_IFMT(st_.st_mode), st_.st_mode)
            else:
                out[str(p)] = (stat.S_IFMT(st_.st_mode), st_.st_mode, st_.st_size, st_.st_mtime_ns, content)
    return out


@pytest.fixture
def sandbox(tmp_path):
    """A folder holding `into` and the user's other files, which no extract may touch."""
    (tmp_path / "victim").mkdir()
    (tmp_path / "victim" / "precious.txt").write_text("keep me")
    (tmp_path / "victim" / "link").symlink_to(tmp_path / "victim" / "precious.txt")
    (tmp_path / "into").mkdir()
    (tmp_path / "into" / "other-dataset").mkdir()
    (tmp_path / "into" / "other-dataset" / "x.JPEG").write_bytes(b"other")
    return tmp_path


# ------------------------------------------------------------------------- names out of normal form


def test_a_doubled_slash_cannot_reach_an_absolute_path(sandbox):
    """`ds//<absolute path>/file`: Path(tmp) / "/abs" is absolute, and the old check looked only at
    the name's first character. It wrote (and replaced) the file there and exited 0; verify passed."""
    victim = sandbox / "victim" / "precious.txt"
    archive = tgz(sandbox / "dl" / f"{STEM}.tgz", [(f"{STEM}/ok.txt", b"ok"), (f"{STEM}/{victim}", b"pwned")])
    assert f"{STEM}//" in tarfile.open(archive).getnames()[1]
    before = snapshot(sandbox, sandbox / "into" / STEM)
    r = run_cli("extract", archive, "--into", sandbox / "into")
    fk.one_line_error(r, 1, f"member {STEM}/{victim}", "empty part", "nothing extracted")
    assert victim.read_text() == "keep me" and snapshot(sandbox, sandbox / "into" / STEM) == before
    assert sorted(os.listdir(sandbox / "into")) == ["other-dataset"]
    r = run_cli("verify", archive, "-q")
    assert r.returncode == 1
    structure = next(ln for ln in r.stdout.splitlines() if "structure" in ln)
    assert structure.startswith("FAIL") and f"{STEM}/{victim}" in r.stdout and "unsafe members" in r.stdout


@pytest.mark.parametrize("name", [f"{STEM}/../escape.txt", f"{STEM}/./x.txt", "/abs.txt", f"{STEM}\\..\\x.txt",
                                  f"{STEM}/x.txt/", f"{STEM}/\uff0e\uff0e/x.txt", f"{STEM}/{'y' * 300}.txt",
                                  f"{STEM}/a\nb.txt", f"./{STEM}/../x.txt"])
def test_names_out_of_normal_form_are_refused_by_extract_and_fail_verify(sandbox, name):
    archive = tgz(sandbox / "dl" / f"{STEM}.tgz", [(f"{STEM}/ok.txt", b"ok"), (name, b"x")])
    before = snapshot(sandbox, sandbox / "into" / STEM)
    r = run_cli("extract", archive, "--into", sandbox / "into")
    fk.one_line_error(r, 1, "nothing extracted")
    assert snapshot(sandbox, sandbox / "into" / STEM) == before and not (sandbox / "into" / STEM).exists()
    r = run_cli("verify", archive, "-q", "--json")
    structure = next(lv for lv in __import__("json").loads(r.stdout)["levels"] if lv["level"] == "structure")
    assert r.returncode == 1 and not structure["passed"] and structure["unsafe"], structure


def test_the_leading_dot_slash_of_tar_c_dir_dot_is_normal(tmp_path):
    src = tmp_path / "src" / STEM / "train" / "n01440764"
    src.mkdir(parents=True)
    (src / "a.JPEG").write_bytes(b"jpeg bytes")
    archive = tmp_path / "dl" / f"{STEM}.tgz"
    archive.parent.mkdir()
    subprocess.run(["tar", "-C", tmp_path / "src", "-czf", archive, "."], check=True)
    assert tarfile.open(archive).getnames()[0] == "."
    r = run_cli("extract", archive, "--into", tmp_path / "into")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "into" / STEM / "train" / "n01440764" / "a.JPEG").read_bytes() == b"jpeg bytes"


def test_a_file_then_a_folder_of_the_same_name_blames_the_archive(tmp_path):
    for members in ([(f"{STEM}/a", b"1"), (f"{STEM}/a", None)], [(f"{STEM}/a", None), (f"{STEM}/a", b"1")],
                    [(f"{STEM}/a", b"1"), (f"{STEM}/a/b", b"2")], [(f"{STEM}/a", b"1"), (f"./{STEM}/a", b"2")]):
        archive = tgz(tmp_path / "dl" / f"{STEM}.tgz", members)
        r = run_cli("extract", archive, "--into", tmp_path / "into")
        fk.one_line_error(r, 1, f"{archive}: member", "stored twice, or as a file and a folder", "nothing extracted")
        assert not (tmp_path / "into").exists()  # nor the folder it made


VICTIM = "{victim}"  # stands for the absolute path of the user's folder beside --into


@pytest.mark.fuzz
@given(st.lists(st.tuples(hostile_names() | st.sampled_from([f"{VICTIM}/precious.txt", f"{VICTIM}/new.txt",
                                                              f".{VICTIM}/precious.txt", f"{VICTIM}"]),
                          st.sampled_from(["file", "dir"]), st.booleans()), min_size=1, max_size=5),
       st.sampled_from([STEM, "..", ".", ".hidden", "a b", "q'x"]))
@example([(f"{VICTIM}/precious.txt", "file", True)], STEM)  # `ds//<absolute path>`
def test_nothing_outside_into_changes_whatever_the_archive(workdir, members, stem):
    """The property of extract: generated member names (doubled and trailing slashes, `.` and `..`
    parts anywhere, backslashes, NUL, long parts, Unicode that normalises to `..`, the absolute path
    of a folder of the user's), some under the top folder, some not, as files and folders; a
    hostile archive name too."""
    sandbox = workdir / "sandbox"
    if sandbox.exists():
        import shutil
        shutil.rmtree(sandbox)
    (sandbox / "victim").mkdir(parents=True)
    (sandbox / "victim" / "precious.txt").write_text("keep me")
    into = sandbox / "into"
    into.mkdir()
    archive = sandbox / "dl" / f"{stem}.tgz"
    entries = []
    for name, kind, under_top in members:
        name = name.replace("\0", "").replace(VICTIM, str(sandbox / "victim"))  # (a tar name ends at NUL)
        entries.append((f"{stem}/{name}" if under_top else name, None if kind == "dir" else b"x"))
    try:
        tgz(archive, entries)
    except (ValueError, UnicodeError, tarfile.TarError):
        return  # tarfile cannot write the name: no archive to attack with
    before = snapshot(sandbox, into)
    try:
        result = ib.extract(archive, into=into, force=True)
    except ib.UserError:
        assert os.listdir(into) == [], "a refused archive left something in --into"
    else:
        folder = Path(result["folder"])
        assert folder.parent == into and folder.name == stem
        for dirpath, dirnames, filenames in os.walk(folder):
            for n in dirnames + filenames:
                p = Path(dirpath) / n
                assert not p.is_symlink() and os.path.realpath(p).startswith(str(into.resolve()) + os.sep)
    assert snapshot(sandbox, into) == before


# ------------------------------------------------------------------------------- archive names


@pytest.mark.parametrize("name", ["..tar.gz", "..tgz", ".tgz", ".hidden.tgz"])
def test_an_archive_whose_stem_is_not_one_ordinary_name_is_refused(sandbox, name):
    """`..tar.gz` has the stem `.`: with --force, `<into>/.` was the whole of --into, and the user's
    other datasets were deleted with it."""
    archive = tgz(sandbox / "dl" / name, [("./x", b"x")])
    before = snapshot(sandbox, sandbox / "none")
    r = run_cli("extract", archive, "--into", sandbox / "into", "--force")
    fk.one_line_error(r, 2, "not one ordinary name", "rename the archive")
    assert snapshot(sandbox, sandbox / "none") == before


def test_printed_load_lines_are_data_whatever_the_folder_is_called(tmp_path):
    """A folder name pasted inside '...' made the printed torchvision and fastai lines run code."""
    stem = "q'+__import__('os').getlogin()+'"
    archive = tgz(tmp_path / f"{stem}.tgz", [(f"{stem}/train/n01440764/a.JPEG", b"x")])
    result = ib.extract(archive, into=tmp_path / "data")
    folder = str(Path(result["folder"]).absolute())
    allowed = (ast.Expression, ast.Call, ast.Attribute, ast.Name, ast.Load, ast.Constant, ast.keyword)
    for library, line in result["load"].items():
        tree = ast.parse(line, mode="eval")
        assert all(isinstance(node, allowed) for node in ast.walk(tree)), (library, line)  # calls of names on literals
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
        assert all(not isinstance(n.func, ast.Name) or n.func.id == "Resize" for n in calls), line
        strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        assert folder in strings or folder + "/train" in strings or str(Path(folder).parent) in strings, line
    r = run_cli("extract", archive, "--into", tmp_path / "again")
    assert r.returncode == 0 and "__import__('os')" not in r.stdout.replace(repr(stem)[1:-1], "")


# ------------------------------------------------------------------------------ --force and races


def test_a_folder_that_appears_while_extracting_is_never_replaced(tmp_path, monkeypatch):
    archive = tgz(tmp_path / f"{STEM}.tgz", [(f"{STEM}/a.txt", b"new")])
    into = tmp_path / "into"
    unpack = extractor._unpack

    def slow(*args):
        out = unpack(*args)
        (into / STEM).mkdir()  # another program makes it meanwhile
        (into / STEM / "theirs.txt").write_text("theirs")
        return out

    monkeypatch.setattr(extractor, "_unpack", slow)
    with pytest.raises(ib.UserError, match="appeared while extracting"):
        ib.extract(archive, into=into)
    assert sorted(os.listdir(into)) == [STEM] and os.listdir(into / STEM) == ["theirs.txt"]
    empty = tmp_path / "into2"  # the same with an empty folder, which a plain rename would replace
    monkeypatch.setattr(extractor, "_unpack", lambda *a: (unpack(*a), (empty / STEM).mkdir())[0])
    with pytest.raises(ib.UserError, match="appeared while extracting"):
        ib.extract(archive, into=empty)
    assert os.listdir(empty) == [STEM]


def test_two_extracts_of_one_archive_at_once_one_is_refused(tmp_path, monkeypatch):
    archive = tgz(tmp_path / f"{STEM}.tgz", [(f"{STEM}/a.txt", b"x")])
    into = tmp_path / "into"
    unpack, seen = extractor._unpack, []

    def with_a_second(*args):
        try:
            ib.extract(archive, into=into)
        except ib.DataError as exc:
            seen.append(str(exc))
        return unpack(*args)

    monkeypatch.setattr(extractor, "_unpack", with_a_second)
    ib.extract(archive, into=into)
    assert len(seen) == 1 and "another extract is writing it" in seen[0]
    assert (into / STEM / "a.txt").read_bytes() == b"x"


def test_force_never_deletes_the_archive_being_extracted_or_its_sums(tmp_path):
    into = tmp_path / "into"
    archive = tgz(into / STEM / f"{STEM}.tgz", [(f"{STEM}/a.txt", b"x")])
    (into / STEM / "SHA256SUMS").write_text(f"{fk.sha256(archive)}  {STEM}.tgz\n")
    r = run_cli("extract", archive, "--into", into, "--force")
    fk.one_line_error(r, 2, f"holds {archive}", "move the archive")
    assert archive.is_file() and (into / STEM / "SHA256SUMS").is_file()
    elsewhere = tgz(tmp_path / "dl" / f"{STEM}.tgz", [(f"{STEM}/a.txt", b"x")])
    os.link(elsewhere, into / STEM / "hardlinked.tgz")  # another name of it may stay: only that copy goes
    (tmp_path / "dl" / "SHA256SUMS").symlink_to(into / STEM / "SHA256SUMS")
    r = run_cli("extract", elsewhere, "--into", into, "--force")
    fk.one_line_error(r, 2, "SHA256SUMS", "would delete")


@pytest.mark.parametrize("kind", ["symlink", "file", "folder"])
def test_force_replaces_only_what_is_at_the_name_and_leaves_nothing(tmp_path, kind):
    into = tmp_path / "into"
    into.mkdir()
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "keep.txt").write_text("keep")
    dest = into / STEM
    if kind == "symlink":
        dest.symlink_to(target)
    elif kind == "file":
        dest.write_text("a file")
    else:
        dest.mkdir()
        (dest / "old.txt").write_text("old")
    archive = tgz(tmp_path / f"{STEM}.tgz", [(f"{STEM}/a.txt", b"new")])
    r = run_cli("extract", archive, "--into", into, "--force")
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(into)) == [STEM] and os.listdir(dest) == ["a.txt"] and not dest.is_symlink()
    assert (target / "keep.txt").read_text() == "keep"


def test_force_never_replaces_a_fifo(tmp_path):
    into = tmp_path / "into"
    into.mkdir()
    os.mkfifo(into / STEM)
    archive = tgz(tmp_path / f"{STEM}.tgz", [(f"{STEM}/a.txt", b"new")])
    r = run_cli("extract", archive, "--into", into, "--force", timeout=60)
    fk.one_line_error(r, 2, "a named pipe, never replaced")
    assert stat.S_ISFIFO(os.lstat(into / STEM).st_mode)


# ---------------------------------------------------------------------------------- leftovers


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_a_killed_extracts_temporary_folder_is_removed_by_the_next(tmp_path):
    into = tmp_path / "into"
    stale = into / f".{STEM}.partial-{procs.host()}-{_dead_pid()}"
    (stale / STEM).mkdir(parents=True)
    old = into / f".{STEM}.old.partial-{procs.host()}-{_dead_pid()}"
    old.symlink_to(tmp_path)
    live = into / f".{STEM}.partial-{procs.host()}-{os.getpid()}x"  # not ours to judge: kept
    live.mkdir()
    other = into / f".other.partial-{procs.host()}-{_dead_pid()}"  # another archive's: not this extract's business
    other.mkdir()
    archive = tgz(tmp_path / f"{STEM}.tgz", [(f"{STEM}/a.txt", b"x")])
    assert run_cli("extract", archive, "--into", into).returncode == 0
    assert sorted(os.listdir(into)) == sorted([STEM, live.name, other.name])
    assert tmp_path.is_dir()


def test_a_failed_extract_leaves_no_folder_it_made(tmp_path):
    archive = tgz(tmp_path / f"{STEM}.tgz", [(f"{STEM}/a.txt", b"x"), ("/etc/x", b"y")])
    r = run_cli("extract", archive, "--into", tmp_path / "new" / "deeper" / "into")
    fk.one_line_error(r, 1, "nothing extracted")
    assert os.listdir(tmp_path) == [f"{STEM}.tgz"]


def test_into_that_cannot_be_written_is_one_line(tmp_path):
    archive = tgz(tmp_path / f"{STEM}.tgz", [(f"{STEM}/a.txt", b"x")])
    (tmp_path / "file").write_text("x")
    r = run_cli("extract", archive, "--into", tmp_path / "file" / "into")
    fk.one_line_error(r, 1, "cannot create the folder")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    prefix = fk.drop_root_file_access()
    if prefix is None:
        pytest.skip("cannot drop root's file access here (setpriv missing)")
    r = subprocess.run(prefix + fk.cli_command("extract", archive, "--into", locked), capture_output=True, text=True)
    fk.one_line_error(r, 1, f"{locked}: cannot write", "permission denied")
    r = subprocess.run(prefix + fk.cli_command("extract", archive, "--into", locked / "sub"), capture_output=True,
                       text=True)
    fk.one_line_error(r, 1, "cannot create the folder", "permission denied")
    assert os.listdir(locked) == []


@pytest.mark.parametrize("planted", ["file", "symlink", "folder"])
def test_anything_planted_at_the_temporary_name_is_never_followed(tmp_path, planted):
    into = tmp_path / "into"
    into.mkdir()
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("keep")
    tmp = partial_path(into / STEM)  # this process's name: guessable by anyone who can write --into
    if planted == "file":
        tmp.write_text("planted")
    elif planted == "symlink":
        tmp.symlink_to(victim)
    else:
        tmp.mkdir()
        (tmp / STEM).mkdir()
    archive = tgz(tmp_path / f"{STEM}.tgz", [(f"{STEM}/a.txt", b"x")])
    ib.extract(archive, into=into)
    assert os.listdir(victim) == ["keep.txt"] and sorted(os.listdir(into)) == [STEM]
    assert os.listdir(into / STEM) == ["a.txt"]


# ------------------------------------------------------------------------- files a user names


def _reader(fifo: Path, got: list) -> threading.Thread:
    def read():
        with open(fifo, "rb") as f:
            got.append(f.read())
    t = threading.Thread(target=read, daemon=True)
    t.start()
    return t


def test_preview_into_a_fifo_is_written_into_or_refused_never_replaced(tmp_path):
    archive = tgz(tmp_path / f"{STEM}.tgz", [(f"{STEM}/train/n01440764/a.JPEG", fk.good_jpeg())])
    fifo = tmp_path / "out.png"
    os.mkfifo(fifo)
    r = run_cli("preview", archive, "-o", fifo, timeout=60)  # nobody reads it: refused, never waited on
    fk.one_line_error(r, 2, f"{fifo}: cannot write", "no process is reading")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    got: list = []
    t = _reader(fifo, got)
    import time
    time.sleep(0.2)
    r = run_cli("preview", archive, "-o", fifo, timeout=60)
    t.join(30)
    assert r.returncode == 0, r.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and got and got[0].startswith(b"\x89PNG")


def test_preview_into_a_character_device_writes_into_it(tmp_path):
    archive = tgz(tmp_path / f"{STEM}.tgz", [(f"{STEM}/train/n01440764/a.JPEG", fk.good_jpeg())])
    device = tmp_path / "null"
    try:
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a /dev/null of our own
    except (PermissionError, OSError):
        device = Path("/dev/null")  # not root: renaming over it would fail anyway, but it must not be tried
    r = run_cli("preview", archive, "-o", device, timeout=60)
    assert r.returncode == 0, r.stderr
    assert stat.S_ISCHR(os.lstat(device).st_mode)
    assert [p for p in os.listdir(device.parent) if ".partial-" in p] == []


@pytest.mark.parametrize("command", ["preview", "new-manifest"])
def test_a_folder_or_a_socket_named_as_the_output_is_refused(tmp_path, command):
    import socket
    archive = tgz(tmp_path / f"{STEM}.tgz", [(f"{STEM}/train/n01440764/a.JPEG", fk.good_jpeg())])
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "mine.txt").write_text("mine")
    sock_path = tmp_path / "s"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    try:
        for out, why in ((folder, "a folder, not a file"), (sock_path, "a socket")):
            args = (["preview", archive, "-o", out] if command == "preview" else
                    ["new-manifest", "x", "--random", "3", "--out", out, "--force"])
            r = run_cli(*args, timeout=60)
            fk.one_line_error(r, 2 if command == "preview" else 1, f"{out}: cannot write", why)
        assert os.listdir(folder) == ["mine.txt"] and stat.S_ISSOCK(os.lstat(sock_path).st_mode)
    finally:
        sock.close()


def test_new_manifest_force_into_a_fifo_writes_into_it(tmp_path):
    fifo = tmp_path / "m.toml"
    os.mkfifo(fifo)
    got: list = []
    t = _reader(fifo, got)
    r = run_cli("new-manifest", "x", "--random", "3", "--out", fifo, "--force", timeout=60)
    t.join(30)
    assert r.returncode == 0, r.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and b'name = "x"' in got[0]
    (tmp_path / "real.toml").write_text("mine")
    link = tmp_path / "link.toml"
    link.symlink_to(tmp_path / "real.toml")
    r = run_cli("new-manifest", "x", "--random", "3", "--out", link)
    fk.one_line_error(r, 2, "already exists")
    assert run_cli("new-manifest", "x", "--random", "3", "--out", link, "--force").returncode == 0
    assert link.is_symlink() and b'name = "x"' in (tmp_path / "real.toml").read_bytes()


def test_sample_imagenet_never_writes_over_a_folder_of_the_users(tmp_path):
    """`sample-imagenet /data/imagenet` (a real copy, named by mistake) overwrote its images with
    synthetic ones of the same names; a link planted in a sample folder was written through."""
    real = tmp_path / "imagenet" / "train" / "n01440764"
    real.mkdir(parents=True)
    (real / "n01440764_10026.JPEG").write_bytes(b"the user's photo")
    r = run_cli("sample-imagenet", tmp_path / "imagenet", "--per-class", "1", "-q")
    fk.one_line_error(r, 2, "did not write", "new or empty folder")
    assert (real / "n01440764_10026.JPEG").read_bytes() == b"the user's photo"
    sample = tmp_path / "sample"
    assert run_cli("sample-imagenet", sample, "--per-class", "1", "-q").returncode == 0
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    image = next((sample / "train" / "n01440764").iterdir())
    image.unlink()
    image.symlink_to(victim)
    assert run_cli("sample-imagenet", sample, "--per-class", "1", "-q").returncode == 0  # its own folder: again
    assert victim.read_text() == "keep" and not image.is_symlink() and image.read_bytes()[:2] == b"\xff\xd8"
