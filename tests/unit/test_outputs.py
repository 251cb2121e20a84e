"""Files beside the archives (outputs.py): sums files merged, never clobbered; every file written
under a temporary name that is made afresh and renamed into place; the temporary files of dead
processes of this host removed, and only those."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from imagenette_build import outputs, procs
from imagenette_build.errors import DataError
from imagenette_build.outputs import (
    ArchiveLocks, atomic_write, final_path, partial_path, read_sums, remove_stale_partials, update_sums,
)

from .. import faultkit as fk

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
        with pytest.raises(DataError, match=rf"^{named} line 2: not a '<hash>  <file>' line"):
            read_sums(sums, 64)


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
    monkeypatch.setattr(outputs.os, "fsync", lambda fd: (_ for _ in ()).throw(KeyboardInterrupt))
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
    from imagenette_build.outputs import atomic_write, partial_path
    from imagenette_build.pack import ArchiveWriter

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
