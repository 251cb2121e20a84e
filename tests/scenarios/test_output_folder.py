"""The output folder as others leave it: something at a final name that the build did not make (a
symlink, a file where a folder goes), an output that cannot be renamed in half-way through a
commit, and several builds of one stem in other formats, one after the other or at once, whose
report must describe every output on disk."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from .. import faultkit as fk
from ..conftest import run_cli

STEM = "imagenette2-sample-16"
TIMEOUT = 120


def _build(sample, out: Path, *args):
    root, manifest_path = sample
    return run_cli("--imagenet", root, "--manifest", manifest_path, "--size", "16", "--out", out, "-q", "-j", "1",
                   *args, timeout=TIMEOUT)


def _report(out: Path) -> dict:
    return json.loads((out / f"{STEM}.json").read_text())


def _listed(report: dict) -> dict[str, str]:
    return {f["path"]: f["sha256"] for o in report["outputs"].values() for f in o["files"]}


# ------------------------------------------------------------------------------ final names the build did not make


def _dangling(path: Path, tmp: Path) -> str:
    path.symlink_to(tmp / "nowhere")
    return "is a symbolic link to"


def _link_to_folder(path: Path, tmp: Path) -> str:
    target = tmp / "theirs"
    target.mkdir()
    (target / "keep.txt").write_text("theirs")
    path.symlink_to(target)
    return "is a symbolic link to"


def _file(path: Path, tmp: Path) -> str:
    path.write_text("theirs")
    return "is a file, where the build puts a folder"


def _folder(path: Path, tmp: Path) -> str:
    path.mkdir()
    (path / "keep.txt").write_text("theirs")
    return "is a folder, where the build puts a file"


def _fifo(path: Path, tmp: Path) -> str:
    os.mkfifo(path)
    return "is a named pipe, where the build puts a file"


@pytest.mark.parametrize("name,plant", [
    (f"{STEM}-wds", _dangling),
    (f"{STEM}-wds", _link_to_folder),
    (f"{STEM}-parquet", _file),
    (f"{STEM}.tgz", _folder),
    (f"{STEM}.json", _folder),
    (f"{STEM}.members.sha256", _dangling),
    ("SHA256SUMS", _fifo),
], ids=["dangling-link-at-wds", "link-to-folder-at-wds", "file-at-parquet", "folder-at-tgz", "folder-at-report",
        "link-at-member-list", "fifo-at-sums"])
def test_something_the_build_did_not_make_at_a_final_name_is_refused_before_any_image_is_read(
        sample, tmp_path, name, plant):
    """A dangling symlink at <stem>-wds: the tgz was renamed into place without its report, member
    list or sums lines, and the error said only "Not a directory" (every later build into that --out
    did the same). A regular file at <stem>-parquet was moved aside and deleted; a symlink to a
    folder was replaced. Now each is refused at once, naming it and what it is; nothing is written,
    nothing read (no cache made), and what was there is left as it was."""
    out = tmp_path / "out"
    out.mkdir()
    what = plant(out / name, tmp_path)
    before = sorted(os.listdir(out))
    r = _build(sample, out, "--format", "tgz", "--format", "parquet", "--format", "webdataset")
    fk.one_line_error(r, 1, f"{out / name}: {what}", "move it away")
    assert sorted(os.listdir(out)) == before  # nothing written: no outputs, no cache, no temporary files
    if plant is _link_to_folder:
        assert os.listdir(tmp_path / "theirs") == ["keep.txt"] and os.readlink(out / name) == str(tmp_path / "theirs")
    if plant is _file:
        assert (out / name).read_text() == "theirs"
    if plant is _folder:
        assert os.listdir(out / name) == ["keep.txt"]


def test_an_output_that_cannot_be_renamed_in_leaves_the_ones_in_place_with_their_report_and_sums(sample, tmp_path):
    """The webdataset shards are put in place, then a folder appears at <stem>.tgz (while the build
    is paused between the check and the renames): the archive cannot be renamed in. The shards were
    left in place without report or sums lines; now they get both, and the error names the archive
    as not written."""
    root, manifest_path = sample
    out = tmp_path / "out"
    build = subprocess.Popen(fk.paused_cli_command("commit-archive", 3, "--imagenet", root, "--manifest",
                                                   manifest_path, "--size", "16", "--out", out, "-q", "-j", "1",
                                                   "--format", "webdataset", "--format", "tgz"),
                             stderr=subprocess.PIPE, text=True, preexec_fn=fk.default_sigint)
    try:
        assert build.stderr.readline().strip() == "test-pause commit-archive"
        (out / f"{STEM}.tgz").mkdir()
        err = build.stderr.read()
        build.wait(timeout=TIMEOUT)
    finally:
        if build.poll() is None:
            build.kill()
            build.wait()
    r = subprocess.CompletedProcess(build.args, build.returncode, "", err)
    fk.one_line_error(r, 1, f"{out / STEM}.tgz: cannot put it in place: is a directory",
                      f"{out / STEM}-wds is complete and in place with its report and its lines in SHA256SUMS",
                      f"not written: {out / STEM}.tgz")
    report = _report(out)
    assert list(report["outputs"]) == ["webdataset"] and report["archive"] is None
    shards = {str(p.relative_to(out)): fk.sha256(p) for p in (out / f"{STEM}-wds").iterdir()}
    assert _listed(report) == shards == fk.parse_sums(out / "SHA256SUMS")
    assert not (out / f"{STEM}.members.sha256").exists()
    assert not [n for n in os.listdir(out) if fk.PARTIAL.match(n)]


# ------------------------------------------------------------------------------ one report for every output of a stem


def test_another_format_keeps_the_archive_in_the_report_and_verify_checks_its_member_list(sample, tmp_path):
    """tgz, then parquet at another quality, into one --out: the second report had `archive` null
    and no `members_sha256`, and verify passed with "members: no member list". The report now
    keeps the archive (as the earlier build made it: its own recipe), and verify checks the list
    and reads the archive's recipe, not the later build's."""
    root, manifest_path = sample
    out = tmp_path / "out"
    assert _build(sample, out).returncode == 0
    first = _report(out)
    r = _build(sample, out, "--format", "parquet", "--quality", "90")
    assert r.returncode == 0, r.stderr
    report = _report(out)
    assert list(report["outputs"]) == ["parquet", "tgz"]
    for key in ("archive", "archive_bytes", "sha256", "md5", "tar_sha256", "members_sha256"):
        assert report[key] == first[key], key
    assert report["options"]["recipe"]["quality"] == 90
    earlier = report["outputs"]["tgz"]["earlier_build"]
    assert earlier["options"]["recipe"]["quality"] == 75 and earlier["options"]["formats"] == ["tgz"]
    assert earlier["fidelity"]["published_recipe"] is True and report["fidelity"]["published_recipe"] is False
    assert _listed(report) == fk.parse_sums(out / "SHA256SUMS")
    v = run_cli("verify", out / f"{STEM}.tgz", "--imagenet", root, "--manifest", manifest_path, "--json",
                timeout=TIMEOUT)
    assert v.returncode == 0, v.stdout + v.stderr
    result = json.loads(v.stdout)
    members = next(level for level in result["levels"] if level["level"] == "members")
    assert f"51 of 51 members as {STEM}.members.sha256 lists" in members["summary"]
    assert result["recipe"]["quality"] == 75


def test_two_builds_of_other_formats_at_once_leave_a_report_listing_both(sample, tmp_path):
    """parquet and webdataset of one stem, started at once: the report listed whichever committed
    last. Each commit now keeps what the other put in place."""
    root, manifest_path = sample
    out = tmp_path / "out"
    builds = [subprocess.Popen(fk.cli_command("--imagenet", root, "--manifest", manifest_path, "--size", "16",
                                              "--out", out, "-q", "-j", "1", "--format", fmt),
                               stderr=subprocess.PIPE, text=True, preexec_fn=fk.default_sigint)
              for fmt in ("parquet", "webdataset")]
    for b in builds:
        _, err = b.communicate(timeout=TIMEOUT)
        assert b.returncode == 0, err
    report = _report(out)
    assert set(report["outputs"]) == {"parquet", "webdataset"}
    assert _listed(report) == fk.parse_sums(out / "SHA256SUMS")
    for path, digest in _listed(report).items():
        assert fk.sha256(out / path) == digest


def test_a_kept_output_whose_files_changed_or_went_is_dropped_and_the_earlier_build_is_carried_along(
        sample, tmp_path):
    """Each kept output is checked on disk: one whose shard was deleted, or changed size, is no
    longer described. An output kept twice still says how its own build differed."""
    out = tmp_path / "out"
    assert _build(sample, out, "--quality", "80").returncode == 0  # tgz
    assert _build(sample, out, "--format", "parquet").returncode == 0
    assert _build(sample, out, "--format", "webdataset").returncode == 0
    report = _report(out)
    assert set(report["outputs"]) == {"webdataset", "tgz", "parquet"}
    assert report["outputs"]["tgz"]["earlier_build"]["options"]["recipe"]["quality"] == 80
    assert report["outputs"]["parquet"]["earlier_build"]["options"]["formats"] == ["parquet"]
    assert "fidelity" not in report["outputs"]["parquet"]["earlier_build"]  # what is the same is not repeated
    next((out / f"{STEM}-parquet").iterdir()).unlink()
    with open(out / f"{STEM}.tgz", "ab") as f:
        f.write(b"\0")
    assert _build(sample, out, "--format", "webdataset").returncode == 0
    report = _report(out)
    assert list(report["outputs"]) == ["webdataset"]
    assert report["archive"] is None and report.get("members_sha256") is None


# ------------------------------------------------------------------------------ the cache folder in odd places


def test_a_cache_folder_inside_an_output_the_build_replaces_is_refused(sample, tmp_path):
    """--cache <out>/<stem>-wds/cache: the commit replaced <stem>-wds, and with it the cache the user
    named (and all it held), after the build had filled it. Now refused before anything is written."""
    out = tmp_path / "out"
    cache = out / f"{STEM}-wds" / "cache"
    cache.mkdir(parents=True)
    (cache / "keep.txt").write_text("theirs")
    r = _build(sample, out, "--format", "webdataset", "--cache", cache)
    fk.one_line_error(r, 2, f"--cache {cache}: is inside {out / STEM}-wds, which the build replaces")
    assert os.listdir(cache) == ["keep.txt"] and sorted(os.listdir(out)) == [f"{STEM}-wds"]


def test_a_default_cache_folder_that_is_a_symlink_is_not_written_through(sample, tmp_path):
    """<out>/.imagenette-cache as a symlink to a folder elsewhere: the build wrote its packs there,
    outside --out. It now builds without a cache, saying why, and leaves the folder and the link."""
    out = tmp_path / "out"
    out.mkdir()
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "keep.txt").write_text("theirs")
    (out / fk.CACHE).symlink_to(theirs)
    r = _build(sample, out)
    assert r.returncode == 0, r.stderr
    assert f"{out / fk.CACHE}: cannot make the cache folder (is a symbolic link" in r.stderr
    assert os.listdir(theirs) == ["keep.txt"] and (out / fk.CACHE).is_symlink()
    assert _report(out)["cache"] is None


def test_the_default_cache_is_not_removed_when_it_holds_what_the_cache_did_not_make(sample, tmp_path):
    """One build's --out was another's default cache folder (<out>/.imagenette-cache): the second
    build, done, removed the folder with the first one's archives in it. A cache folder holding
    anything the cache did not make is now left, and the build says why."""
    out = tmp_path / "out"
    first = out / fk.CACHE
    assert _build(sample, first).returncode == 0
    root, manifest_path = sample
    r = run_cli("--imagenet", root, "--manifest", manifest_path, "--size", "24", "--out", out, "-j", "1",
                timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert f"left the resize cache {first} in place: it holds 'MD5SUMS', which the cache did not make" in r.stderr
    assert fk.parse_sums(first / "SHA256SUMS") == {name: fk.sha256(first / name) for name in
                                                   (f"{STEM}.tgz", f"{STEM}.provenance.csv", f"{STEM}.README.md",
                                                    f"{STEM}.preview.png")}
