"""The engine that runs tasks, kept apart from the tasks: joblib, any of its backends.

Results come back in submission order, so the archive is written while later batches are still
being resized and its bytes do not depend on which worker finished first.

Memory is bounded by a window: joblib's generator output dispatches a new task whenever one
finishes, not when its result is consumed, so a consumer slower than the workers (packing a
full-size archive) would let results pile up (1.6 GB RSS measured on imagenette2 full size). Tasks
are therefore fed to one long-lived `Parallel` in windows of `window` tasks; at most one window of
results is held at a time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from itertools import islice

from joblib import Parallel, delayed

BACKENDS = ("loky", "threading", "multiprocessing")


def default_jobs() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def ordered_map(func: Callable, tasks: Iterable[tuple], jobs: int, backend: str = "loky",
                window: int | None = None) -> Iterator:
    """func(*task) for each task, yielded in task order, run on `jobs` workers."""
    if jobs == 1:
        # In-process: no worker start-up, and tracebacks stay simple. Same results, same order.
        for task in tasks:
            yield func(*task)
        return
    window = window or 8 * jobs
    it = iter(tasks)
    with Parallel(n_jobs=jobs, backend=backend, return_as="generator", batch_size=1,
                  pre_dispatch="all") as parallel:
        while chunk := list(islice(it, window)):
            yield from parallel(delayed(func)(*task) for task in chunk)


def batches(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
