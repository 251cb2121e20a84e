"""Interruption, with a real subprocess: Ctrl-C (SIGINT), SIGTERM and kill -9 at known
points of a build (scan, resize, between the archives' completion and their commit, and between
each step of the commit), using the test-only entry tests/paused_cli.py.

After SIGINT/SIGTERM: exit 130/143, one line, workers ended, no temporary file left. After kill -9:
nothing incomplete or stale under a final name, the workers end by themselves, and the rerun
removes the dead run's temporary files, reuses the cache and writes the same bytes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from imagenette_build.cache import count_entries

from .. import faultkit as fk
from ..conftest import run_cli

BUILD = ("--size", "32", "--jobs", "2", "--batch-size", "4", "-q")
STEM = "imagenette2-sample-32"


@pytest.fixture(scope="module")
def reference(sample, tmp_path_factory):
    """An uninterrupted build without the cache: the bytes every rerun must reproduce."""
    root, manifest_path = sample
    out = tmp_path_factory.mktemp("reference")
    r = run_cli("--imagenet", root, "--manifest", manifest_path, *BUILD, "--out", out, "--no-cache")
    assert r.returncode == 0, r.stderr
    return fk.sha256(out / f"{STEM}.tgz")


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            found.add(c)
            todo.append(c)
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _describe_processes(pids: set[int]) -> str:
    out = []
    for pid in sorted(pids):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:120]
            status = Path(f"/proc/{pid}/status").read_text()
            ppid = next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:"))
        except OSError:
            cmd, ppid = "?", "?"
        out.append(f"{pid} (parent {ppid}): {cmd}")
    return "; ".join(out)


def _wait_gone(pids: set[int], seconds: float = 10.0) -> set[int]:
    deadline = time.monotonic() + seconds
    while (left := {p for p in pids if _alive(p)}) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


class Paused:
    """The CLI in a subprocess, stopped at `point` (it printed "test-pause <point>")."""

    def __init__(self, args, point: str, timeout: float = 60.0):
        self.proc = subprocess.Popen(fk.paused_cli_command(point, 60, *args), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True,
                                     preexec_fn=fk.default_sigint)
        killer = threading.Timer(timeout, self.proc.kill)
        killer.start()
        try:
            self.before = []
            while (line := self.proc.stderr.readline()) and line.strip() != f"test-pause {point}":
                self.before.append(line)
        finally:
            killer.cancel()
        assert line, f"the build ended before reaching {point}: {''.join(self.before)}"
        self.pid = self.proc.pid
        self.workers = _descendants(self.pid)

    def stop(self, sig: int, group: bool = False) -> tuple[int, str]:
        if group:  # what a terminal's Ctrl-C does: the whole foreground process group
            os.killpg(self.pid, sig)
        else:
            os.kill(self.pid, sig)
        if sig == signal.SIGKILL:  # its workers may hold the pipes a little longer: do not wait for them
            self.proc.wait(timeout=60)
            self.proc.stdout.close()
            self.proc.stderr.close()
            return self.proc.returncode, "".join(self.before)
        _, err = self.proc.communicate(timeout=60)
        return self.proc.returncode, "".join(self.before) + err


def _rerun(root, manifest_path, out, reference):
    r = run_cli("--imagenet", root, "--manifest", manifest_path, *BUILD, "--out", out, "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["sha256"] == reference
    archives = fk.assert_consistent(out)
    assert archives == {f"{STEM}.tgz": reference}
    return report


@pytest.mark.parametrize("point", ["scan", "resize", "commit", "commit-report"])
def test_ctrl_c(sample, tmp_path, reference, point):
    root, manifest_path = sample
    out = tmp_path / "out"
    build = Paused(["--imagenet", root, "--manifest", manifest_path, *BUILD, "--out", out], point)
    if point != "scan":
        assert build.workers, "the build runs worker processes"
    code, err = build.stop(signal.SIGINT)
    assert code == 130, err
    assert err.strip() == "imagenette-build: interrupted; temporary files removed", err
    assert not _wait_gone(build.workers), "workers left running"
    fk.assert_consistent(out)  # no temporary file, nothing stale
    if out.exists():
        assert not (out / fk.CACHE / "tmp").exists() or not list((out / fk.CACHE / "tmp").iterdir())
    if point == "commit-report":  # interrupted after the rename: the archive is whole, its sums not yet written
        assert fk.sha256(out / f"{STEM}.tgz") == reference
        assert not (out / "SHA256SUMS").exists()
        _rerun(root, manifest_path, out, reference)


@pytest.mark.parametrize("sig,group,code,message", [
    (signal.SIGINT, True, 130, "imagenette-build: interrupted; temporary files removed"),
    (signal.SIGTERM, False, 143, "imagenette-build: terminated (SIGTERM); temporary files removed"),
])
def test_terminal_ctrl_c_and_sigterm_during_resize(sample, tmp_path, sig, group, code, message):
    root, manifest_path = sample
    out = tmp_path / "out"
    build = Paused(["--imagenet", root, "--manifest", manifest_path, *BUILD, "--out", out], "resize")
    got, err = build.stop(sig, group=group)
    assert got == code and err.strip() == message, (got, err)
    assert not _wait_gone(build.workers)
    assert fk.assert_consistent(out) == {}


def test_kill_9_at_every_point_then_rerun(sample, tmp_path, reference):
    """kill -9 at each point in turn, in one output folder that starts with an older build of the
    same archive (quality 90): after each kill, every final name holds a complete file whose sums
    line and report, when present, match it (until the rename the older archive stays, after it
    the new one is there); the workers end by themselves; the rerun removes the dead runs'
    temporary files and writes the uninterrupted bytes."""
    root, manifest_path = sample
    out = tmp_path / "out"
    r = run_cli("--imagenet", root, "--manifest", manifest_path, *BUILD, "--out", out, "--quality", "90", "--no-cache")
    assert r.returncode == 0, r.stderr
    older = fk.sha256(out / f"{STEM}.tgz")
    for point in ("scan", "resize", "commit", "commit-archive", "commit-report", "commit-sums"):
        # (batches of 2: 25 tasks, so that both workers have run one, and watch for the build, by then)
        build = Paused(["--imagenet", root, "--manifest", manifest_path, *BUILD, "--batch-size", "2",
                        "--out", out], point)
        code, _ = build.stop(signal.SIGKILL)
        assert code == -signal.SIGKILL
        archives = fk.assert_consistent(out, allow_partials=True)
        expected = reference if point in ("commit-report", "commit-sums") else older
        assert archives == {f"{STEM}.tgz": expected}, point
        left = _wait_gone(build.workers)
        assert not left, f"orphaned workers did not end ({point}): {_describe_processes(left)}"
        if point in ("resize", "commit", "commit-archive"):
            assert f".{STEM}.tgz.partial-" in " ".join(os.listdir(out)), point
    _rerun(root, manifest_path, out, reference)
    assert not [n for n in os.listdir(out) if fk.PARTIAL.match(n)], "stale temporary files not removed"


def test_resume_after_kill_9_redoes_only_what_was_not_done(sample, tmp_path, reference):
    """One worker (in-process), killed when half the images are packed: the cache holds what was
    done; the rerun finds exactly those, makes the rest, and writes the uninterrupted bytes."""
    root, manifest_path = sample
    out = tmp_path / "out"
    args = ["--imagenet", root, "--manifest", manifest_path, "--size", "32", "--batch-size", "4", "-q", "--out", out]
    build = Paused([*args, "--jobs", "1"], "resize")
    build.stop(signal.SIGKILL)
    done = count_entries(out / fk.CACHE)
    assert 20 <= done <= 32, done  # half of 50, in batches of 4
    report = _rerun(root, manifest_path, out, reference)
    assert report["cache"]["hits"] == done
    assert report["cache"]["misses"] == report["cache"]["written"] == 50 - done


def test_a_build_that_ends_leaves_the_cache_that_another_build_into_its_out_is_using(sample, tmp_path, reference):
    """Two builds into one --out: the first to end removed .imagenette-cache while the other was
    writing to it (the other lost its resume). The cache is now removed only when no build holds
    it: the paused build's entries stay, its rerun after a kill -9 finds them, and that rerun,
    alone, removes the cache."""
    root, manifest_path = sample
    out = tmp_path / "out"
    paused = Paused(["--imagenet", root, "--manifest", manifest_path, "--size", "32", "--batch-size", "4", "-q",
                     "--out", out, "--jobs", "1"], "resize")
    try:
        other = run_cli("--imagenet", root, "--manifest", manifest_path, "--size", "24", "--out", out, "--jobs", "1")
        assert other.returncode == 0, other.stderr
        assert f"left the resize cache {out / fk.CACHE} in place: another build is using it" in other.stderr
    finally:
        paused.stop(signal.SIGKILL)
    assert count_entries(out / fk.CACHE) >= 50 + 20  # the other's 50 at 24 px, and half of these at 32 px
    r = run_cli("--imagenet", root, "--manifest", manifest_path, *BUILD, "--out", out, "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["sha256"] == reference
    assert 20 <= report["cache"]["hits"] <= 32, report["cache"]
    assert set(fk.assert_consistent(out)) == {f"{STEM}.tgz", "imagenette2-sample-24.tgz"}
    assert not (out / fk.CACHE).exists()
