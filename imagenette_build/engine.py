"""The engine that runs tasks, kept apart from the tasks: joblib with any of its local backends, or a
Dask cluster through joblib's own Dask backend.

Results come back in submission order, so the archive is written while later batches are still
being resized and its bytes do not depend on which worker finished first.

Memory is bounded by a window: joblib's generator output dispatches a new task whenever one
finishes, not when its result is consumed, so a consumer slower than the workers (packing a
full-size archive) would let results pile up (gigabytes for a full-size build). Tasks
are therefore fed to one long-lived `Parallel` in windows of `window` tasks per worker; at most one
window of results is held at a time.

On a Dask cluster (`scheduler=`) the same `Parallel` runs with joblib's "dask" backend on a
`distributed.Client` connected to that scheduler: joblib submits each task as one Dask future, Dask
places it on a worker, retries it elsewhere when its worker dies (up to the scheduler's
`distributed.scheduler.allowed-failures`, 3 by default) and sends the result back to this process.
The window then covers every thread of the cluster. Tasks carry plain data (file paths and byte
ranges, sizes, a recipe), so the workers must see the same files at the same paths; each task also
checks that its worker makes the same bytes as this machine (`toolchain.fingerprint`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import CancelledError
from contextlib import ExitStack, contextmanager
from pathlib import Path

from joblib import Parallel, delayed, parallel_config

from . import procs, settings
from .errors import EXIT_DATA, UserError
from .toolchain import fingerprint

BACKENDS = ("loky", "threading", "multiprocessing")
NO_WORKERS_ENV = settings.ENV["no_workers_timeout"]  # seconds a build waits while the cluster has no worker
DASK_HINT = ("--scheduler needs Dask's distributed scheduler, which is not installed: "
             "pip install 'imagenette-build[dask]'")
CLUSTER_DOC = "imagenette-build's docs/cluster.md"
ByteWindow = tuple[int, Callable[[tuple], int]]  # (limit, weigh): see ordered_map


def ordered_map(func: Callable, tasks: Iterable[tuple], jobs: int, backend: str = "loky",
                window: int = 8, scheduler: str | None = None,
                initializer: tuple[Callable, tuple] | None = None,
                window_bytes: ByteWindow | None = None) -> Iterator:
    """func(*task) for each task, yielded in task order.

    Runs on `jobs` local workers with a joblib `backend`, or, given a Dask `scheduler` address, on
    every thread of that cluster (`jobs` and `backend` are then unused). At most `window` tasks per
    worker are submitted, and their results held, at once. `initializer`: (function, args) run
    once in each worker process the process backends (loky, multiprocessing) start, when it starts,
    whether or not it ever gets a task. `window_bytes`: (limit, weigh): the window also ends
    once its tasks weigh `limit` by `weigh(task)` (the last task may pass it), so that tasks of
    very different sizes are bounded in bytes, not in count.
    """
    if scheduler:
        yield from _dask_map(func, tasks, scheduler, window, window_bytes)
        return
    if jobs == 1:
        # In-process: no worker start-up, and tracebacks stay simple. Same results, same order.
        for task in tasks:
            result = func(*task)
            del task  # not held while the next task is made
            yield result
        return
    with Workers(jobs, backend, initializer) as workers:
        yield from workers.map(func, tasks, window, window_bytes)


class Workers:
    """`jobs` local worker processes (or threads) of a joblib `backend`, started when made, and
    `map`, which runs tasks on them as `ordered_map` does.

    Starting a process worker (a new interpreter, which imports the modules of `warm_up`, a
    function pickled by reference) takes about a second of CPU. Made before the caller's own serial
    work (the build's scan and plan), that start-up runs beside the work, not after it: on 2 cores
    the parent's single thread leaves a core idle there. `warm_up(*warm_args)` runs once in each
    worker (loky); `initializer` as in `ordered_map`. Use it as a context manager: leaving ends
    joblib's use of the workers (loky keeps them a while for a next `Parallel`).
    """

    def __init__(self, jobs: int, backend: str = "loky", initializer: tuple[Callable, tuple] | None = None,
                 warm_up: Callable = os.getpid, warm_args: tuple = ()):
        self.jobs = jobs
        # joblib's multiprocessing backend cannot stream results (return_as="generator" is refused):
        # there each window comes back as a list, in the same order and within the same memory bound.
        return_as = "list" if backend == "multiprocessing" else "generator"
        params = {}
        if initializer is not None and backend in ("loky", "multiprocessing"):
            params = {"initializer": initializer[0], "initargs": initializer[1]}
        # joblib reads the backend's parameters when a Parallel is made; the config is left before
        # anything else runs, so it never reaches the caller's code.
        with parallel_config(backend=backend, **params):
            self._parallel = Parallel(n_jobs=jobs, return_as=return_as, batch_size=1, pre_dispatch="all")
        self._stack = ExitStack()
        # A terminal's Ctrl-C reaches the whole process group, and a worker still importing its
        # modules (worker_setup not yet run) printed a KeyboardInterrupt traceback. Workers are
        # started with SIGINT ignored, which a new process keeps: the pool forks them on entering
        # (multiprocessing), loky starts them when the first tasks are submitted, here the warm-up
        # calls, which returns at once (a Ctrl-C in those few ms is lost). The calls then run while
        # the caller goes on; `map` waits for them before its first task.
        self._warming: Iterable = ()
        try:
            with procs.sigint_ignored(backend in ("loky", "multiprocessing")):
                self._stack.enter_context(self._parallel)
                if backend == "loky":
                    self._warming = self._parallel(delayed(warm_up)(*warm_args) for _ in range(jobs))
        except BaseException:
            self._stack.close()
            raise

    def map(self, func: Callable, tasks: Iterable[tuple], window: int = 8,
            window_bytes: ByteWindow | None = None) -> Iterator:
        """func(*task) for each task, in task order, at most `window` tasks a worker at once."""
        for _ in self._warming:
            pass
        self._warming = ()
        yield from _in_windows(self._parallel, func, tasks, window * self.jobs, window_bytes)

    def close(self) -> None:
        """Leave the workers; warm-up calls still running are cancelled (a build that failed
        before its first task), without joblib's warning about them."""
        warming, self._warming = self._warming, ()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if hasattr(warming, "close"):
                warming.close()
            self._stack.close()

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _in_windows(parallel: Parallel, func: Callable, tasks: Iterable[tuple], size: int,
                window_bytes: ByteWindow | None = None, first_args: tuple = ()) -> Iterator:
    """func(*first_args, *task) for each task, a window at a time."""
    for chunk in _windows(tasks, size, window_bytes):
        yield from parallel(delayed(func)(*first_args, *task) for task in chunk)
        del chunk  # one window held at a time: not this one while the next is made


def _windows(tasks: Iterable[tuple], size: int, window_bytes: ByteWindow | None) -> Iterator[list[tuple]]:
    """Consecutive lists of at most `size` tasks, and of about `window_bytes[0]` by weight."""
    limit, weigh = window_bytes or (0, None)
    chunk: list[tuple] = []
    held = 0
    for task in tasks:
        chunk.append(task)
        held += weigh(task) if weigh else 0
        if len(chunk) >= size or (weigh and held >= limit):
            yield chunk
            chunk, held = [], 0
    if chunk:
        yield chunk


def batches(items: Sequence, size: int) -> Iterator[Sequence]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


# --- Dask ----------------------------------------------------------------------------------------

def import_distributed():
    """The `distributed` package, or the one-line install hint (exit 2) when it is missing."""
    try:
        import distributed
    except ImportError:
        raise UserError(DASK_HINT) from None
    return distributed


def connect_timeout() -> float:
    """Seconds to reach the scheduler, and for a first worker (the run's `settings`)."""
    return settings.current().connect_timeout


def no_workers_timeout() -> float:
    return settings.current().no_workers_timeout


_QUIET_LOGS = ("distributed.client", "tornado.application", "asyncio")


@contextmanager
def dask_client(address: str, timeout: float | None = None):
    """A `distributed.Client` on the scheduler at `address`; a one-line error (exit 2) when the
    address is malformed or nothing answers there within `timeout` seconds."""
    distributed = import_distributed()
    timeout = timeout or connect_timeout()
    try:
        # Checked before Client(): a Client that fails on a malformed address hangs 20 s in __del__.
        distributed.comm.get_address_host_port(address)
    except ValueError as exc:  # "unknown address scheme", "missing port number"
        raise UserError(f"--scheduler {address}: not a Dask scheduler address ({exc}); "
                        "give one like tcp://head:8786") from None
    try:
        client = distributed.Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise UserError(f"--scheduler {address}: no Dask scheduler answered within {timeout:g} s "
                        f"({exc}); is `dask scheduler` running there? ({CLUSTER_DOC})") from None
    # The client (and tornado, for the client's callbacks in flight when it is closed on a lost
    # cluster) log their own account with tracebacks; the error message here says it once.
    logs = [logging.getLogger(name) for name in _QUIET_LOGS]
    levels = [log.level for log in logs]
    for log in logs:
        log.setLevel(logging.CRITICAL + 1)
    try:
        yield client
    except BaseException:
        client.close()  # the loggers stay quiet: callbacks still in flight may log after this
        raise
    client.close()
    for log, level in zip(logs, levels):
        log.setLevel(level)


def _cluster_threads(client, address: str, timeout: float | None = None) -> int:
    """Threads of the cluster's workers, waiting up to `timeout` s for a first worker."""
    distributed = import_distributed()
    timeout = timeout or connect_timeout()
    if not client.nthreads():
        try:
            client.wait_for_workers(1, timeout=timeout)
        except (distributed.TimeoutError, TimeoutError, OSError):
            raise UserError(f"--scheduler {address}: the scheduler has no workers (waited {timeout:g} s); "
                            f"start some with `dask worker {address}` ({CLUSTER_DOC})") from None
    return sum(client.nthreads().values())


def _differences(theirs: dict, ours: dict) -> str:
    return ", ".join(f"{k} {theirs.get(k)} (here {v})" for k, v in ours.items() if theirs.get(k) != v)


def _worker_facts(paths: Sequence[str], run: settings.Settings) -> dict:
    """Run on every worker by `check_scheduler`."""
    settings.install(run)  # (the fingerprint names the resampler the run's settings ask for)
    return {"fingerprint": fingerprint(), "missing": [p for p in paths if not os.path.exists(p)]}


def check_scheduler(address: str, must_see: Sequence[tuple[str, Path]] = (),
                    timeout: float | None = None) -> dict:
    """Before a cluster build: the scheduler answers, has workers, each of them runs this package
    with the same bytes fingerprint and sees each (option, path) of `must_see` at the same path.
    Returns {"workers": n, "threads": n}. Every failure is a one-line UserError (exit 2)."""
    with dask_client(address, timeout) as client:
        threads = _cluster_threads(client, address, timeout)
        try:
            facts = client.run(_worker_facts, [str(p) for _, p in must_see], settings.current())
        except Exception as exc:  # noqa: BLE001 - e.g. the package is not installed on a worker
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UserError(f"--scheduler {address}: a worker cannot run imagenette-build ({type(exc).__name__}: "
                            f"{text}); install the same imagenette-build on every worker ({CLUSTER_DOC})") from None
        ours = fingerprint()
        for worker, answer in sorted(facts.items()):
            if answer["fingerprint"] != ours:
                raise UserError(f"--scheduler {address}: worker {worker} would make different bytes: "
                                f"{_differences(answer['fingerprint'], ours)}; install the same "
                                f"imagenette-build and Pillow on every worker ({CLUSTER_DOC})")
            for option, path in must_see:
                if str(path) in answer["missing"]:
                    raise UserError(f"{option} {path}: not found on worker {worker}; the workers must see "
                                    f"it at the same path as this machine ({CLUSTER_DOC})")
        return {"workers": len(facts), "threads": threads}


def _checked_call(client_fingerprint: dict, func: Callable, *args):
    """The task as run on a worker: refuse to run where the output bytes would differ (a worker
    that joined after `check_scheduler`, with another Pillow or imagenette-build)."""
    ours = fingerprint()
    if ours != client_fingerprint:
        from distributed import get_worker

        raise UserError(f"worker {get_worker().address} would make different bytes: "
                        f"{_differences(ours, client_fingerprint)}; install the same imagenette-build and "
                        f"Pillow on every worker ({CLUSTER_DOC})")
    return func(*args)


def _dask_map(func: Callable, tasks: Iterable[tuple], address: str, window: int,
              window_bytes: ByteWindow | None = None) -> Iterator:
    distributed = import_distributed()
    ours = fingerprint()
    with dask_client(address) as client:
        threads = _cluster_threads(client, address)
        # joblib reads the active backend when a Parallel is made; the config must not stay active
        # while this generator is suspended in the caller's code.
        with parallel_config(backend="dask", client=client, wait_for_workers_timeout=connect_timeout()):
            parallel = Parallel(n_jobs=-1, return_as="generator", batch_size=1, pre_dispatch="all")
        watch = _ClusterWatch(client, no_workers_timeout())
        watch.start()
        try:
            with parallel:
                yield from _in_windows(parallel, _checked_call, tasks, window * threads, window_bytes,
                                       first_args=(ours, func))
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - the tasks catch every image error: this is the cluster
            watch.stop()
            failure = watch.failure or exc
            if isinstance(failure, distributed.KilledWorker):
                last = getattr(getattr(failure, "last_worker", None), "address", "?")
                why = (f"{failure.allowed_failures + 1} Dask workers died while running the same batch of "
                       f"images (the last one {last}; see the workers' logs: out of memory?)")
            elif isinstance(failure, UserError):
                raise failure from None
            elif watch.no_workers:
                why = f"the cluster had no workers for {watch.limit:g} s ({NO_WORKERS_ENV})"
            elif isinstance(failure, CancelledError) or client.status != "running":
                why = f"lost the Dask scheduler ({_first_line(failure)})"
            else:
                why = f"the cluster failed ({_first_line(failure)})"
            raise UserError(f"--scheduler {address}: {why}; stopped, no archive written",
                            exit_code=EXIT_DATA) from None
        finally:
            watch.stop()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class _ClusterWatch(threading.Thread):
    """Turns two cluster states that would leave the build waiting forever into errors.

    - A batch that failed in Dask itself (KilledWorker: its workers kept dying) completes its future
      with an error, but joblib's Dask backend hears of a future only through the success callback
      (joblib 1.6 `DaskDistributedBackend._collect`), so the generator would wait for it forever.
    - Dask keeps tasks waiting while the cluster has no workers (none came back after they died).
    Either way, the client is closed: that cancels the build's futures, which joblib does hear of,
    and the main thread raises; `failure` / `no_workers` say why.
    """

    def __init__(self, client, limit: float, poll: float = 0.5):
        super().__init__(name="imagenette-build-cluster-watch", daemon=True)
        self.client, self.limit, self.poll = client, limit, poll
        self.failure: BaseException | None = None
        self.no_workers = False
        self._stopped = threading.Event()

    def run(self) -> None:
        since = None
        while not self._stopped.wait(self.poll):
            try:
                self.failure = next((st.exception for st in list(self.client.futures.values())
                                     if st.status == "error"), None)
                workers = self.client.nthreads()
            except Exception:  # noqa: BLE001 - the scheduler is gone: the main thread hears of it
                return
            now = time.monotonic()
            if workers:
                since = None
            elif since is None:
                since = now
            elif now - since >= self.limit:
                self.no_workers = True
            if (self.failure is not None or self.no_workers) and not self._stopped.is_set():
                self.client.close()
                return

    def stop(self) -> None:
        self._stopped.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=5)
