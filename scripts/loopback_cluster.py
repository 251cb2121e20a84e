"""A real Dask cluster on loopback for the demo and the tests: `dask scheduler` and N `dask worker`
processes on 127.0.0.1, random free ports, stopped on the way out whatever happened.

    python scripts/loopback_cluster.py [--workers 2] [--dir DIR] -- COMMAND [ARG...]

starts the cluster, runs COMMAND with IMAGENETTE_BUILD_SCHEDULER set to the scheduler's address
(`{scheduler}` in an argument is replaced by it too), stops the cluster and exits with COMMAND's
exit code. Logs go to DIR/scheduler.log and DIR/worker-N.log.

Ports: the scheduler listens on port 0 (the kernel picks a free one) and writes its address to a
scheduler file, which is what the workers and this script read, so two clusters never race for a
port. The workers start together with the scheduler and wait for that file. Start-up is waited for
by polling the file and then asking the scheduler for N workers, with time limits; a process that
exits early fails the start with the tail of its log. Each process runs
in its own session, so stopping it (SIGTERM, then SIGKILL after a grace period) also stops a
worker's nanny children. Leftovers from a killed parent stop themselves: the scheduler after
--idle-timeout, workers when the scheduler is gone (--death-timeout).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCHEDULER_ENV = "IMAGENETTE_BUILD_SCHEDULER"


class ClusterStartError(RuntimeError):
    pass


class LoopbackCluster:
    """`with LoopbackCluster(folder, workers=2) as cluster:` -> cluster.address, cluster.workers.

    worker_env: extra environment for all workers, or a list with one dict per worker.
    nanny: False starts `--no-nanny` workers (a killed worker then stays dead).
    """

    def __init__(self, folder: Path, workers: int = 2, threads: int = 1, *, nanny: bool = True,
                 preload: str | None = None, worker_env: dict | list[dict] | None = None,
                 scheduler_env: dict | None = None, start_timeout: float = 60.0):
        self.folder = Path(folder).absolute()
        self.n_workers = workers
        self.threads = threads
        self.nanny = nanny
        self.preload = preload
        self.worker_env = worker_env if isinstance(worker_env, list) else [worker_env or {}] * workers
        self.scheduler_env = scheduler_env or {}
        self.start_timeout = start_timeout
        self.scheduler: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.address: str | None = None
        self._logs: list = []

    # -- start -------------------------------------------------------------------------------------
    def _spawn(self, args: list[str], log_name: str, extra_env: dict) -> subprocess.Popen:
        log = open(self.folder / log_name, "wb")  # noqa: SIM115 - closed in stop()
        self._logs.append(log)
        env = {**os.environ, **extra_env}
        # The processes run in this folder, not the caller's: paths must reach them absolute.
        return subprocess.Popen([sys.executable, "-m", "dask", *args], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=self.folder, env=env, start_new_session=True)

    def _fail(self, what: str, proc: subprocess.Popen, log_name: str) -> None:
        tail = (self.folder / log_name).read_text(errors="replace").strip().splitlines()[-15:]
        state = f"exited with {proc.returncode}" if proc.poll() is not None else "still running"
        raise ClusterStartError(f"{what} ({state}); last lines of {self.folder / log_name}:\n" + "\n".join(tail))

    def start(self) -> LoopbackCluster:
        self.folder.mkdir(parents=True, exist_ok=True)
        sched_file = self.folder / "scheduler.json"
        sched_file.unlink(missing_ok=True)
        self.scheduler = self._spawn(["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                      "--scheduler-file", str(sched_file), "--idle-timeout", "900"],
                                     "scheduler.log", self.scheduler_env)
        deadline = time.monotonic() + self.start_timeout
        # Workers start at once, side by side with the scheduler: they wait for its file.
        for i in range(self.n_workers):
            args = ["worker", "--scheduler-file", str(sched_file), "--host", "127.0.0.1",
                    "--nthreads", str(self.threads), "--no-dashboard", "--death-timeout", "60",
                    "--name", f"loopback-{i}", "--nanny" if self.nanny else "--no-nanny"]
            if self.preload:
                args += ["--preload", self.preload]
            self.workers.append(self._spawn(args, f"worker-{i}.log", self.worker_env[i]))
        while not self._read_address(sched_file):
            if self.scheduler.poll() is not None or time.monotonic() > deadline:
                self._fail("the scheduler did not start", self.scheduler, "scheduler.log")
            time.sleep(0.05)
        self._wait_for_workers(deadline)
        return self

    def _read_address(self, sched_file: Path) -> str | None:
        try:
            self.address = json.loads(sched_file.read_text())["address"]
        except (OSError, ValueError, KeyError):
            return None
        return self.address

    def _wait_for_workers(self, deadline: float) -> None:
        from distributed import Client

        with Client(self.address, timeout=max(1.0, deadline - time.monotonic()), set_as_default=False) as client:
            while len(client.scheduler_info(n_workers=-1)["workers"]) < self.n_workers:
                for i, w in enumerate(self.workers):
                    if w.poll() is not None:
                        self._fail(f"worker {i} did not start", w, f"worker-{i}.log")
                if time.monotonic() > deadline:
                    self._fail(f"fewer than {self.n_workers} workers after {self.start_timeout:g} s",
                               self.workers[0], "worker-0.log")
                time.sleep(0.1)

    # -- stop --------------------------------------------------------------------------------------
    def stop(self, grace: float = 10.0) -> None:
        procs = [p for p in (*self.workers, self.scheduler) if p is not None]
        for p in procs:
            _signal_group(p, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for p in procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for p in procs:
            _signal_group(p, signal.SIGKILL)  # the group: a nanny's worker child too
            if p.poll() is None:
                p.wait(5)
        for log in self._logs:
            log.close()

    def __enter__(self) -> LoopbackCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # its own session: pgid == pid
    except (ProcessLookupError, PermissionError):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="threads per worker (default 1)")
    parser.add_argument("--dir", type=Path, default=None, help="folder for the logs (default: a temporary one)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARG...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    folder = args.dir or Path(tempfile.mkdtemp(prefix="loopback-cluster-"))
    try:
        with LoopbackCluster(folder.absolute(), args.workers, args.threads) as cluster:
            print(f"loopback cluster: scheduler {cluster.address}, {args.workers} workers "
                  f"(logs in {folder})", file=sys.stderr)
            command = [a.replace("{scheduler}", cluster.address) for a in command]
            env = {**os.environ, SCHEDULER_ENV: cluster.address}
            code = subprocess.call(command, env=env)
    except ClusterStartError as exc:
        print(f"loopback cluster: {exc}", file=sys.stderr)
        return 1
    print("loopback cluster: stopped", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
