"""The engine that runs tasks, kept apart from the tasks: joblib, any of its backends.

Results come back in submission order (`return_as="generator"`), so the archive is written while
later batches are still being resized and its bytes do not depend on which worker finished first.
joblib dispatches a new task when one finishes, keeping about 2 x jobs tasks in flight: memory does
not grow with the number of images.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator

from joblib import Parallel, delayed

BACKENDS = ("loky", "threading", "multiprocessing")


def default_jobs() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def ordered_map(func: Callable, tasks: Iterable[tuple], jobs: int, backend: str = "loky") -> Iterator:
    """func(*task) for each task, yielded in task order, run on `jobs` workers."""
    if jobs == 1:
        # In-process: no worker start-up, and tracebacks stay simple. Same results, same order.
        for task in tasks:
            yield func(*task)
        return
    parallel = Parallel(n_jobs=jobs, backend=backend, return_as="generator", batch_size=1,
                        pre_dispatch="2*n_jobs")
    yield from parallel(delayed(func)(*task) for task in tasks)


def batches(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
