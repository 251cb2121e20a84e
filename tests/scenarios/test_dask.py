"""Building on a Dask cluster (docs/cluster.md): a real distributed.LocalCluster
and real `dask scheduler` / `dask worker` processes on loopback, the real command line against them,
and the archives compared byte for byte with a local build."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imagenette_build import engine
from imagenette_build.errors import UserError

from .. import faultkit as fk

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from loopback_cluster import LoopbackCluster  # noqa: E402

CRASH_PRELOAD = str(Path(__file__).resolve().parents[1] / "dask_worker_crash.py")
SIZES = ("--size", "64", "--size", "full")  # resized and originals: both come back from the workers
ARCHIVES = ("imagenette2-sample-64.tgz", "imagenette2-sample.tgz")


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run_cli_bounded(*args, env=None, cwd=None, timeout=90):
    """run_cli with a time limit: a cluster build that hangs fails the test instead of the run."""
    return subprocess.run([sys.executable, "-m", "imagenette_build.cli", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


def build(sample, out, *extra, env=None):
    root, manifest_path = sample
    # --batch-size 4: 13 tasks for the 50 images, so work is spread and a worker can die mid-build.
    return run_cli_bounded("--imagenet", root, "--manifest", manifest_path, *SIZES, "--out", out,
                           "--batch-size", "4", "-q", *extra, env=env)


@pytest.fixture(scope="module")
def local_hashes(sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    r = build(sample, out, "--jobs", "2")
    assert r.returncode == 0, r.stderr
    return {name: sha256(out / name) for name in ARCHIVES}


@pytest.fixture(scope="module")
def local_cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        yield cluster


def test_localcluster_build_is_byte_identical_to_local(local_cluster, local_hashes, sample, tmp_path):
    address = local_cluster.scheduler_address
    done_before = _tasks_done(local_cluster)
    r = build(sample, tmp_path, "--scheduler", address)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # --quiet: nothing from Dask either
    assert {name: sha256(tmp_path / name) for name in ARCHIVES} == local_hashes
    # The work ran on the cluster: one task per batch of 4 images.
    assert _tasks_done(local_cluster) - done_before == 13
    report = json.loads((tmp_path / "imagenette2-sample-64.json").read_text())
    assert report["options"]["scheduler"] == address


@pytest.mark.parametrize("layout", ["ilsvrc-tars", "hf-shards"])
def test_localcluster_build_from_the_downloads_in_place(layout, local_cluster, local_hashes, archived_layouts,
                                                         tmp_path):
    """Workers read byte ranges of the original tars, or of the spill file of Hugging Face's tar.gz
    shards under $IMAGENETTE_BUILD_TMPDIR (a folder the workers share): same bytes as the local
    build from extracted folders."""
    env = dict(os.environ, IMAGENETTE_BUILD_TMPDIR=str(tmp_path / "spill"))
    (tmp_path / "spill").mkdir()
    r = build(archived_layouts[layout], tmp_path / "out", "--scheduler", local_cluster.scheduler_address, env=env)
    assert r.returncode == 0, r.stderr
    assert {name: sha256(tmp_path / "out" / name) for name in ARCHIVES} == local_hashes


def _tasks_done(cluster) -> int:
    """Tasks the scheduler has seen finish (TaskPrefix.state_counts accumulates)."""
    return sum(tp.state_counts["memory"] for tp in cluster.scheduler.task_prefixes.values())


def test_scheduler_and_worker_processes_and_a_worker_killed_mid_build(local_hashes, sample, tmp_path):
    """`dask scheduler` + 2 `dask worker` processes (no nanny: a dead worker stays dead).
    Build 1: the address from IMAGENETTE_BUILD_SCHEDULER, --imagenet relative to the client's folder
    (the workers run elsewhere): same bytes as local. Build 2: worker 0 kills itself with SIGKILL in
    its second task; Dask reruns that task on worker 1: same bytes again."""
    pytest.importorskip("distributed")
    root, manifest_path = sample
    armed, marker = tmp_path / "armed", tmp_path / "crashed"
    crash = {"IMAGENETTE_TEST_CRASH_ARMED_BY": str(armed), "IMAGENETTE_TEST_CRASH_ON_TASK": "2",
             "IMAGENETTE_TEST_CRASH_MARKER": str(marker)}
    with LoopbackCluster(tmp_path / "cluster", workers=2, nanny=False, preload=CRASH_PRELOAD,
                         worker_env=[crash, {}]) as cluster:
        env = dict(os.environ, IMAGENETTE_BUILD_SCHEDULER=cluster.address)
        r = run_cli_bounded("--imagenet", root.name, "--manifest", manifest_path, *SIZES, "--out", tmp_path / "out1",
                            "--batch-size", "4", env=env, cwd=root.parent)  # not quiet: the cluster line and the bars
        assert r.returncode == 0, r.stderr
        assert f"cluster {cluster.address}: 2 workers, 2 threads" in r.stderr
        assert "resize: 100%" in r.stderr
        assert {name: sha256(tmp_path / "out1" / name) for name in ARCHIVES} == local_hashes
        assert not marker.exists()

        armed.touch()
        r = build(sample, tmp_path / "out2", "--scheduler", cluster.address)
        victim = cluster.workers[0]
        victim.wait(10)
    assert marker.exists(), "the worker never reached its second task: nothing was tested"
    assert victim.returncode == -9
    assert r.returncode == 0, r.stderr
    assert {name: sha256(tmp_path / "out2" / name) for name in ARCHIVES} == local_hashes


def test_workers_dying_beyond_allowed_failures_stop_the_build(sample, tmp_path):
    """Every worker dies on its first task; with allowed-failures 0 the first death is final: a
    one-line error, exit 1, no archive under a final name."""
    pytest.importorskip("distributed")
    with LoopbackCluster(tmp_path / "cluster", workers=2, preload=CRASH_PRELOAD,
                         worker_env={"IMAGENETTE_TEST_CRASH_ON_TASK": "1"},
                         scheduler_env={"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"}) as cluster:
        started = time.monotonic()
        r = build(sample, tmp_path / "out", "--scheduler", cluster.address)
        elapsed = time.monotonic() - started
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "Dask workers died while running the same batch" in lines[0]
    assert "no archive written" in lines[0]
    assert not any((tmp_path / "out").glob("*.tgz")) and not (tmp_path / "out" / "SHA256SUMS").exists()
    assert elapsed < 30


def test_progress_streams_results_as_tasks_complete(local_cluster):
    """Results are yielded while later tasks still run, in task order (the progress bar follows)."""
    tasks = [(0.25,)] * 12  # 12 x 0.25 s on 2 worker threads: at least 1.5 s in all
    started = time.monotonic()
    arrivals = []
    for _ in engine.ordered_map(time.sleep, tasks, jobs=99, window=8, scheduler=local_cluster.scheduler_address):
        arrivals.append(time.monotonic() - started)
    assert len(arrivals) == 12
    assert arrivals[-1] >= 1.5
    assert arrivals[0] < arrivals[-1] / 2, arrivals  # the first came long before the last
    assert arrivals == sorted(arrivals)


def test_worker_with_other_bytes_fingerprint_is_refused(local_cluster, monkeypatch):
    """A worker whose Pillow or imagenette-build differ would change the archive's bytes: refused
    before the build (check_scheduler) and by each task (a worker that joined later)."""
    real = engine.fingerprint()
    other = dict(real, pillow="Pillow 0.0-other")
    monkeypatch.setattr(engine, "fingerprint", lambda: other)  # this side only: workers keep theirs
    address = local_cluster.scheduler_address
    with pytest.raises(UserError, match=r"would make different bytes: pillow .* \(here Pillow 0.0-other\)"):
        engine.check_scheduler(address)
    with pytest.raises(UserError, match=r"worker tcp://127.0.0.1:\d+ would make different bytes"):
        list(engine.ordered_map(time.sleep, [(0,)], jobs=1, scheduler=address))


def test_path_the_workers_cannot_see_is_refused(local_cluster, tmp_path):
    missing = tmp_path / "not-shared"
    with pytest.raises(UserError, match=r"--imagenet .*not-shared: not found on worker tcp://127.0.0.1:\d+"):
        engine.check_scheduler(local_cluster.scheduler_address, [("--imagenet", missing)])
    info = engine.check_scheduler(local_cluster.scheduler_address, [("--imagenet", tmp_path)])
    assert info == {"workers": 2, "threads": 2}


def test_all_workers_gone_stops_instead_of_waiting_forever(sample, tmp_path):
    """Workers without a nanny all die: Dask would keep the tasks waiting for a worker forever; the
    build stops after IMAGENETTE_BUILD_NO_WORKERS_TIMEOUT seconds with a one-line error, exit 1."""
    pytest.importorskip("distributed")
    env = dict(os.environ, IMAGENETTE_BUILD_NO_WORKERS_TIMEOUT="2")
    with LoopbackCluster(tmp_path / "cluster", workers=2, nanny=False, preload=CRASH_PRELOAD,
                         worker_env={"IMAGENETTE_TEST_CRASH_ON_TASK": "2"}) as cluster:
        r = build(sample, tmp_path / "out", "--scheduler", cluster.address, env=env)
        assert [w.wait(10) for w in cluster.workers] == [-9, -9]
    assert r.returncode == 1, r.stderr
    assert r.stderr.count("\n") == 1, r.stderr
    assert "the cluster had no workers for 2 s (IMAGENETTE_BUILD_NO_WORKERS_TIMEOUT); stopped, no archive written" in r.stderr
    assert not any((tmp_path / "out").glob("*.tgz"))


def test_interrupt_then_scheduler_lost_mid_build(sample, tmp_path):
    """On one slow cluster: Ctrl-C in a build is exit 130 and the scheduler drops the build's tasks;
    then the scheduler killed in a build is a one-line error, exit 1. No archive either time."""
    from distributed import Client

    slow = {"IMAGENETTE_TEST_TASK_SLEEP": "0.5"}  # 13 tasks on 2 workers: over 3 s

    def start_build(out):
        root, manifest_path = sample
        proc = subprocess.Popen([sys.executable, "-m", "imagenette_build.cli", "--imagenet", str(root),
                                 "--manifest", str(manifest_path), *SIZES, "--out", str(out),
                                 "--batch-size", "4", "-q", "--scheduler", cluster.address],
                                stderr=subprocess.PIPE, text=True, preexec_fn=fk.default_sigint)
        _wait_until(lambda: out.exists(), 30)  # the build is under way
        time.sleep(1.0)
        return proc

    def finish(proc):
        try:
            return proc.communicate(timeout=60)[1]
        finally:
            proc.kill()

    with LoopbackCluster(tmp_path / "cluster", workers=2, preload=CRASH_PRELOAD, worker_env=slow) as cluster:
        proc = start_build(tmp_path / "out1")
        proc.send_signal(signal.SIGINT)
        err = finish(proc)
        assert proc.returncode == 130, err
        assert err.count("\n") == 1 and "interrupted" in err, err
        with Client(cluster.address, set_as_default=False) as client:
            _wait_until(lambda: client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)) == 0, 20)

        proc = start_build(tmp_path / "out2")
        cluster.scheduler.kill()
        err = finish(proc)
    assert proc.returncode == 1, err
    assert err.count("\n") == 1 and "lost the Dask scheduler" in err and "no archive written" in err, err
    assert not any((tmp_path / "out1").glob("*.tgz")) and not any((tmp_path / "out2").glob("*.tgz"))


def _wait_until(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_is_a_quick_one_line_error(sample, tmp_path):
    pytest.importorskip("distributed")
    env = dict(os.environ, IMAGENETTE_BUILD_CONNECT_TIMEOUT="1")
    started = time.monotonic()
    r = build(sample, tmp_path / "out", "--scheduler", f"tcp://127.0.0.1:{_free_port()}", env=env)
    assert time.monotonic() - started < 15
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "no Dask scheduler answered within 1 s" in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()  # checked before anything is written

    r = build(sample, tmp_path / "out", "--scheduler", "head-without-port", env=env)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "not a Dask scheduler address" in r.stderr, r.stderr

    with LoopbackCluster(tmp_path / "cluster", workers=0) as cluster:  # a scheduler, no worker
        r = build(sample, tmp_path / "out", "--scheduler", cluster.address, env=env)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "the scheduler has no workers (waited 1 s)" in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()


def test_without_distributed_one_line_install_hint(sample, tmp_path):
    """`distributed` made unimportable (as when the [dask] extra is not installed)."""
    code = ("import sys; sys.modules['distributed'] = None\n"
            "from imagenette_build.cli import main; main(sys.argv[1:])")
    root, manifest_path = sample
    r = subprocess.run([sys.executable, "-c", code, "--imagenet", str(root), "--manifest", str(manifest_path),
                        "--size", "64", "--out", str(tmp_path / "out"), "--scheduler", "tcp://127.0.0.1:8786"],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr == ("imagenette-build: error: --scheduler needs Dask's distributed scheduler, which is "
                        "not installed: pip install 'imagenette-build[dask]'\n")
    # Without --scheduler nothing needs Dask.
    r = subprocess.run([sys.executable, "-c", code, "--imagenet", str(root), "--manifest", str(manifest_path),
                        "--size", "64", "--out", str(tmp_path / "out"), "-q"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
