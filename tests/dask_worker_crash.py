"""A Dask worker preload for tests/scenarios/test_dask.py: the worker process kills itself (SIGKILL,
like the kernel's OOM killer) in the middle of a build task.

    dask worker ... --preload tests/dask_worker_crash.py

IMAGENETTE_TEST_CRASH_ON_TASK=N: die while running this process's N-th task (unset: never).
IMAGENETTE_TEST_CRASH_ARMED_BY=PATH: count tasks only from when PATH exists (a later build).
IMAGENETTE_TEST_CRASH_MARKER=PATH: die at most once for everyone sharing PATH (created at death).
Without the marker every worker dies on its N-th task, every time (Dask's retries run out).
IMAGENETTE_TEST_TASK_SLEEP=S: each task first sleeps S seconds (a slow build, to act in the middle of).

The real `process_batch` is wrapped, not replaced: tasks that run return the real bytes. Tasks refer
to the function by module and name, so the worker runs this wrapper.
"""

import os
import signal
import time

from imagenette_build import worker

_calls = 0


def process_batch(task):
    global _calls
    armed_by = os.environ.get("IMAGENETTE_TEST_CRASH_ARMED_BY")
    if not armed_by or os.path.exists(armed_by):
        _calls += 1
    time.sleep(float(os.environ.get("IMAGENETTE_TEST_TASK_SLEEP", "0")))
    if str(_calls) == os.environ.get("IMAGENETTE_TEST_CRASH_ON_TASK") and _claim():
        os.kill(os.getpid(), signal.SIGKILL)
    return worker.unwrapped_process_batch(task)


def _claim() -> bool:
    marker = os.environ.get("IMAGENETTE_TEST_CRASH_MARKER")
    if not marker:
        return True
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


# Dask may run a preload twice in one process: wrap once, or the wrapper would wrap itself.
if not hasattr(worker, "unwrapped_process_batch"):
    worker.unwrapped_process_batch = worker.process_batch
    worker.process_batch = process_batch
