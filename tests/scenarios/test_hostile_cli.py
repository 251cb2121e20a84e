"""Hostile and odd input on the whole command line (issue 25, items 13 and 14): manifests nested
thousands deep, malformed option values, a reader of the output that goes away, and sums files in
every form `sha256sum -c` reads, lying lines included. Each ends in one line naming what is wrong
(exit 2 for the command line and the files it names, 1 for the data), or in the documented exit
code of a closed pipe (141), never in a traceback, a silent exit 1 or a line taken for another's."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import click
import pytest
from hypothesis import given, strategies as st

from imagenette_build.declare import ByteSize
from imagenette_build.errors import EXIT_PIPE_CLOSED

from .. import faultkit as fk
from ..conftest import run_cli
from ..fuzzkit import event
from .test_interrupt import _descendants, _wait_gone

STEM = "imagenette2-sample-160"
TIMEOUT = 120


def _deep(kind: str, depth: int) -> str:
    value = "[" * depth + "]" * depth if kind == "array" else "{a = " * depth + "1" + "}" * depth
    return f'name = "deep"\nstem = "deep"\nvalue = {value}\n'


# ------------------------------------------------------------------------------ manifests nested deep


@pytest.mark.parametrize("depth", [500, 100_000])
@pytest.mark.parametrize("kind", ["array", "inline"])
def test_a_manifest_nested_deep_is_one_line_in_every_command_that_loads_one(sample, tmp_path, kind, depth):
    """A RecursionError traceback from tomllib in build, verify --manifest, sample-imagenet and
    preview --manifest."""
    root, _ = sample
    toml = tmp_path / "deep.toml"
    toml.write_text(_deep(kind, depth))
    archive = tmp_path / "x.tgz"
    archive.write_bytes(b"")
    for args in (("--imagenet", root, "--manifest", toml, "--dry-run"),
                 ("verify", archive, "--manifest", toml, "-q"),
                 ("sample-imagenet", tmp_path / "sample", "--manifest", toml, "-q"),
                 ("preview", "--imagenet", root, "--manifest", toml, "-o", tmp_path / "sheet.png")):
        r = run_cli(*args, timeout=TIMEOUT)
        fk.one_line_error(r, 2, f"{toml}: not a manifest: arrays or tables nested too deeply to be read")
    assert sorted(os.listdir(tmp_path)) == ["deep.toml", "x.tgz"]  # nothing written


# ------------------------------------------------------------------------------ option values


@pytest.mark.parametrize("value", ["", " ", "B", "iB", "KiB", "1.5M", "²", "١M", "9" * 5000, "0", "1025G"])
def test_a_malformed_shard_size_is_a_usage_error(tmp_path, value):
    """'', ' ', 'B' and 'iB' gave an IndexError traceback, '²' and 5,000 digits a ValueError one."""
    r = run_cli("--imagenet", tmp_path, "--shard-size", value, "--dry-run", timeout=TIMEOUT)
    fk.one_line_error(r, 2, "Invalid value for '--shard-size':", "is not a size in bytes")


@pytest.mark.fuzz
@given(st.one_of(st.text(max_size=12), st.text("0123456789 kKmMgGiIbBtT.-+_\t", max_size=12)))
def test_byte_size_gives_a_size_or_a_usage_error(text):
    try:
        size = ByteSize().convert(text, None, None)
    except click.BadParameter:
        event("refused")
        return
    assert isinstance(size, int) and 1 <= size <= 1 << 40
    event("a size")


@pytest.mark.fuzz
@given(st.integers(0, 1 << 41), st.sampled_from(["", "K", "m", "G"]), st.sampled_from(["", "B", "iB", "i"]),
       st.sampled_from(["", " ", "\t"]))
def test_byte_size_reads_each_spelling_as_its_number_of_bytes(number, unit, suffix, blank):
    suffix = suffix if unit or suffix == "B" or not suffix else ""  # ('iB' alone names no unit)
    text = f"{blank}{number}{blank}{unit}{suffix}{blank}"
    size = number * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[unit.upper()]
    if 1 <= size <= 1 << 40:
        assert ByteSize().convert(text, None, None) == size
    else:
        with pytest.raises(click.BadParameter):
            ByteSize().convert(text, None, None)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-0", "0", "1", "1e-400", "1.0000000000000001"])
def test_new_manifest_refuses_a_val_fraction_the_build_would_refuse(tmp_path, value):
    """`--val-fraction nan` wrote a manifest the build refused ('val_fraction must be between 0
    and 1, not nan'); 1e-400 is 0 as a float."""
    out = tmp_path / "m.toml"
    r = run_cli("new-manifest", "m", "--wnid", "n01440764", "--val-fraction", value, "--out", out)
    fk.one_line_error(r, 2, "--val-fraction ", "must be a number between 0 and 1")
    assert not out.exists()


def test_what_new_manifest_writes_the_build_reads(sample, tmp_path):
    root, _ = sample
    out = tmp_path / "tiny.toml"
    r = run_cli("new-manifest", "tiny", "--wnid", "n01440764", "--val-fraction", "1e-300", "--out", out)
    assert r.returncode == 0, r.stderr
    r = run_cli("--imagenet", root, "--manifest", out, "--dry-run", "--json", "-q")
    assert r.returncode == 0 and json.loads(r.stdout)["manifest"] == "tiny", r.stderr


def test_new_manifest_writes_any_description_the_build_reads(sample, tmp_path):
    """An emoji in --description was written as two escaped surrogates, which TOML refuses: the
    build said `not valid TOML: Escaped character is not a Unicode scalar value`."""
    root, _ = sample
    out = tmp_path / "e.toml"
    r = run_cli("new-manifest", "e", "--wnid", "n01440764", "--description", "fish \U0001f41f\x7f \\ \"", "--out", out)
    assert r.returncode == 0, r.stderr
    r = run_cli("--imagenet", root, "--manifest", out, "--dry-run", "--json", "-q")
    assert r.returncode == 0 and json.loads(r.stdout)["manifest"] == "e", r.stderr
    # an argument that is not UTF-8 (a lone surrogate in Python): one line, nothing written
    r = subprocess.run([*fk.cli_command("new-manifest", "f", "--wnid", "n01440764", "--out", tmp_path / "f.toml"),
                        "--description", b"caf\xe9"], capture_output=True, text=True)
    fk.one_line_error(r, 2, "not UTF-8 text")
    assert not (tmp_path / "f.toml").exists()


# ------------------------------------------------------------------------------ a reader that goes away


def _closed_stdout(*args, env=None) -> subprocess.CompletedProcess:
    """The command with its stdout a pipe whose reader is gone before anything is written."""
    p = subprocess.Popen(fk.cli_command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    p.stdout.close()
    stderr = p.stderr.read().decode()
    return subprocess.CompletedProcess(p.args, p.wait(TIMEOUT), "", stderr)


def test_verify_into_a_closed_pipe_is_not_a_failed_level(built):
    """`verify ... | head` exited 1, silently: the code of a failed level (click's main makes any
    EPIPE exit 1)."""
    _, manifest_path, out = built
    for args in (("--json",), ()):
        r = _closed_stdout("verify", out / f"{STEM}.tgz", "--manifest", manifest_path, "-q", *args)
        assert (r.returncode, r.stderr) == (EXIT_PIPE_CLOSED, ""), r
    r = run_cli("verify", out / f"{STEM}.tgz", "--manifest", manifest_path, "-q", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["passed"], r.stderr  # the same run, read: it passes


@pytest.mark.parametrize("args", [("classes",), ("classes", "--json"), ("--help",), ("verify", "--help")])
def test_other_commands_into_a_closed_pipe_exit_141_silently(args):
    r = _closed_stdout(*args)
    assert (r.returncode, r.stderr) == (EXIT_PIPE_CLOSED, ""), r


def test_a_dry_run_into_a_closed_pipe_writes_nothing(sample, tmp_path):
    root, manifest_path = sample
    r = _closed_stdout("--imagenet", root, "--manifest", manifest_path, "--size", "8", "--out", tmp_path / "o",
                       "--dry-run", "-q")
    assert (r.returncode, r.stderr) == (EXIT_PIPE_CLOSED, ""), r
    assert not (tmp_path / "o").exists()


def test_a_reader_that_reads_one_line_and_closes(tmp_path):
    """`classes --json` (130 kB, more than a pipe holds) into a reader of one line: the write that
    waits for the reader fails when it goes away. (With PYTHONUNBUFFERED, Python drops what a
    partial write left and exits 0: buffered, as by default.)"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    p = subprocess.Popen(fk.cli_command("classes", "--json"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=env)
    assert p.stdout.readline() == b"[\n"
    p.stdout.close()
    assert (p.wait(TIMEOUT), p.stderr.read()) == (EXIT_PIPE_CLOSED, b"")


def test_a_build_whose_stderr_reader_goes_away_ends_cleanly(sample, tmp_path):
    """The progress bar's write to a closed stderr raised BrokenPipeError inside the build, which
    reported `<archive>: cannot write: Broken pipe` (exit 1): the archive was never at fault."""
    root, manifest_path = sample
    out = tmp_path / "out"
    p = subprocess.Popen(fk.cli_command("--imagenet", root, "--manifest", manifest_path, "--size", "160",
                                        "--out", out, "--jobs", "2"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen = b""
    while b"resize" not in seen:
        chunk = os.read(p.stderr.fileno(), 4096)
        assert chunk, seen
        seen += chunk
    workers = _descendants(p.pid)
    p.stderr.close()
    assert p.wait(TIMEOUT) == EXIT_PIPE_CLOSED
    fk.assert_consistent(out)  # nothing half-written, no temporary file left
    assert not _wait_gone(workers), "a worker of the build outlived it"


# ------------------------------------------------------------------------------ sums files in every form


def _copy(out: Path, dest: Path, *names: str) -> Path:
    dest.mkdir(exist_ok=True)
    for name in names:
        shutil.copy(out / name, dest / name)
    return dest / f"{STEM}.tgz"


def _digests(path: Path) -> tuple[str, str]:
    data = path.read_bytes()
    return hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest()


def test_verify_reads_upper_case_and_bsd_tag_lines_as_sha256sum_does(built, tmp_path):
    """Refused before as "not a '<hash>  <file>' line": a failed identity level."""
    _, manifest_path, out = built
    archive = _copy(out, tmp_path, f"{STEM}.tgz")
    sha, md5 = _digests(archive)
    (tmp_path / "SHA256SUMS").write_text(f"{sha.upper()}  {STEM}.tgz\n")
    (tmp_path / "MD5SUMS").write_text(f"MD5 ({STEM}.tgz) = {md5}\n")
    for tool in ("sha256sum", "md5sum"):  # (what coreutils says of the same files)
        assert subprocess.run([tool, "-c", "--strict", tool.upper().replace("SUM", "SUMS")], cwd=tmp_path,
                              capture_output=True).returncode == 0
    r = run_cli("verify", archive, "--manifest", manifest_path, "-q")
    assert r.returncode == 0, r.stdout
    assert "SHA256SUMS: matches" in r.stdout and "MD5SUMS: matches" in r.stdout


@pytest.mark.parametrize("sums,problem", [
    # a lying line written './name' was silently ignored: verify passed, sha256sum -c fails
    ("{bad}  ./{name}\n", "SHA256SUMS says {bad}, the file's hash is {sha}"),
    # a lying line behind a true one
    ("{sha}  {name}\nSHA256 (./{name}) = {bad}\n",
     "SHA256SUMS lines 1 and 2: two different hashes for '{name}'; move the file away or fix it"),
])
def test_verify_and_extract_fail_on_a_lying_sums_line_however_written(built, tmp_path, sums, problem):
    _, manifest_path, out = built
    archive = _copy(out, tmp_path, f"{STEM}.tgz")
    sha, _ = _digests(archive)
    fields = {"bad": "0" * 64, "name": f"{STEM}.tgz", "sha": sha}
    (tmp_path / "SHA256SUMS").write_text(sums.format(**fields))
    assert subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=tmp_path, capture_output=True).returncode == 1
    r = run_cli("verify", archive, "--manifest", manifest_path, "-q")
    assert r.returncode == 1 and problem.format(**fields) in r.stdout, r.stdout
    r = run_cli("extract", archive, "--into", tmp_path / "into")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "into" / STEM).exists() and not list((tmp_path / "into").glob(".*partial*"))


def test_the_build_keeps_other_lines_in_any_form_and_refuses_a_file_that_contradicts_itself(sample, tmp_path):
    root, manifest_path = sample
    out = tmp_path / "out"
    out.mkdir()
    (out / "other.bin").write_bytes(b"another build's output")
    sha, md5 = _digests(out / "other.bin")
    (out / "SHA256SUMS").write_text(f"# published\nSHA256 (./other.bin) = {sha.upper()}\n")
    (out / "MD5SUMS").write_text(f"{md5} other.bin\n")  # BSD's md5 -r
    r = run_cli("--imagenet", root, "--manifest", manifest_path, "--size", "8", "--out", out, "-q")
    assert r.returncode == 0, r.stderr
    # the archive, its card, contact sheet and provenance, in the sorted order
    built = [f"imagenette2-sample-8.{name}" for name in ("README.md", "preview.png", "provenance.csv", "tgz")]
    digests = {name: _digests(out / name) for name in built}
    assert (out / "SHA256SUMS").read_text() == "".join(f"{digests[n][0]}  {n}\n" for n in built) + f"{sha}  other.bin\n"
    assert (out / "MD5SUMS").read_text() == "".join(f"{digests[n][1]}  {n}\n" for n in built) + f"{md5}  other.bin\n"
    for tool in ("sha256sum", "md5sum"):
        assert subprocess.run([tool, "-c", "--strict", tool.upper().replace("SUM", "SUMS")], cwd=out,
                              capture_output=True).returncode == 0
    # two lines for the other file that disagree: which is meant? The build never guesses.
    sums = f"{sha}  other.bin\n{'0' * 64}  ./other.bin\n"
    (out / "SHA256SUMS").write_text(sums)
    r = run_cli("--imagenet", root, "--manifest", manifest_path, "--size", "8", "--out", out, "-q")
    fk.one_line_error(r, 1, f"{out / 'SHA256SUMS'} lines 1 and 2: two different hashes for 'other.bin'")
    assert (out / "SHA256SUMS").read_text() == sums
    assert not [n for n in os.listdir(out) if ".partial-" in n]
    assert not (out / ".imagenette-cache").exists()  # said before any image was resized, not at the commit


def test_a_member_list_in_bsd_tag_form_with_upper_case_hex_reads_as_sha256sum_does(built, tmp_path):
    """Refused before: the members level failed on a list `sha256sum -c` reads."""
    _, manifest_path, out = built
    archive = _copy(out, tmp_path, f"{STEM}.tgz", f"{STEM}.json", f"{STEM}.provenance.csv")
    listed = (out / f"{STEM}.members.sha256").read_text().splitlines()
    rewritten = "".join(f"SHA256 (./{line[66:]}) = {line[:64].upper()}\n" for line in listed)
    (tmp_path / f"{STEM}.members.sha256").write_text(rewritten)
    report = json.loads((tmp_path / f"{STEM}.json").read_text())
    report["members_sha256"]["sha256"] = hashlib.sha256(rewritten.encode()).hexdigest()
    (tmp_path / f"{STEM}.json").write_text(json.dumps(report))
    r = run_cli("verify", archive, "--manifest", manifest_path, "-q", "--json")
    members = next(lv for lv in json.loads(r.stdout)["levels"] if lv["level"] == "members")
    assert r.returncode == 0 and members["passed"], members
    assert members["build_list"]["identical"] == len(listed)
