"""The engine (engine.py): tasks run on local workers with any joblib backend, results in task
order, a bounded window of them held at once."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from imagenette_build.engine import batches, ordered_map


@pytest.mark.parametrize("backend", ["loky", "multiprocessing"])
def test_workers_are_born_ignoring_sigint(backend):
    """A terminal's Ctrl-C reaches every process of the group: a worker still importing its modules
    (before worker_setup ignores SIGINT) printed a KeyboardInterrupt traceback (seen once in a
    `make test` of scenarios/test_interrupt.py's Ctrl-C test). Workers now start with SIGINT
    ignored; here with no initializer at all, so only their start can have done it. The build's
    own handler is back."""
    # As in a terminal (a test run started in the background has SIGINT ignored from the start).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        handlers = list(ordered_map(signal.getsignal, [(signal.SIGINT,)] * 8, 2, backend))
        assert handlers == [signal.SIG_IGN] * 8
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


def _slower_first(i: int) -> int:
    """Earlier tasks take longer: with several workers they finish last."""
    time.sleep(0.01 * (5 - i % 5))
    return i * i


@pytest.mark.parametrize("jobs,backend", [(1, "loky"), (3, "threading"), (2, "loky"), (2, "multiprocessing")])
def test_results_come_back_in_task_order_whatever_the_jobs_and_backend(jobs, backend):
    tasks = [(i,) for i in range(20)]
    assert list(ordered_map(_slower_first, tasks, jobs, backend, window=2)) == [i * i for i in range(20)]


def test_the_tasks_are_made_as_they_are_needed_not_all_at_once():
    """`tasks` may be a generator over a whole plan: it is read a window at a time."""
    made = []

    def tasks():
        for i in range(40):
            made.append(i)
            yield (i,)

    results = ordered_map(abs, tasks(), 2, "threading", window=3)  # windows of 6 tasks
    assert [next(results) for _ in range(3)] == [0, 1, 2]
    assert len(made) <= 12, made  # this window and at most the next one's
    assert list(results) == list(range(3, 40)) and len(made) == 40


def _held_at_once(window_bytes, weights):
    """The most tasks started but not yet consumed, over a run where the consumer is slower than the
    two worker threads."""
    lock, started, consumed, most = threading.Lock(), [0], [0], [0]

    def work(i, weight):
        with lock:
            started[0] += 1
        return i

    for _ in ordered_map(work, [(i, w) for i, w in enumerate(weights)], 2, "threading", window=8,
                         window_bytes=window_bytes):
        with lock:
            most[0] = max(most[0], started[0] - consumed[0])
        time.sleep(0.005)  # a slow consumer: the workers run ahead as far as they may
        consumed[0] += 1
    return most[0]


def test_a_window_ends_at_its_weight_in_bytes():
    """Tasks of 40 "bytes" with a limit of 100: a window ends after 3 tasks (the last may pass the
    limit), so no more than 3 results are ever held, where the count alone would allow 16."""
    weigh = lambda task: task[1]  # noqa: E731
    assert _held_at_once((100, weigh), [40] * 30) <= 3
    assert _held_at_once(None, [40] * 30) > 3
    assert _held_at_once((100, weigh), [1] * 5 + [500] + [1] * 5) <= 6  # the heavy one ends its window


def test_batches_cover_every_item_in_order():
    items = list(range(10))
    assert [list(b) for b in batches(items, 4)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [list(b) for b in batches(items, 10)] == [items]
    assert list(batches([], 4)) == []




def _mark_ready(folder: str) -> int:
    """A warm-up that leaves a file named after its worker's process id."""
    import os
    from pathlib import Path
    Path(folder, str(os.getpid())).touch()
    return os.getpid()


def test_workers_start_when_made_not_at_the_first_task(tmp_path):
    """`Workers` starts its processes and runs the warm-up in each before any task is given (the
    build makes them before its scan and plan, which then run beside their start-up); the tasks
    then run on those same processes, in order."""
    import os
    from imagenette_build.engine import Workers

    with Workers(2, "loky", warm_up=_mark_ready, warm_args=(str(tmp_path),)) as workers:
        deadline = time.monotonic() + 60
        while len(list(tmp_path.iterdir())) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        warmed = {int(p.name) for p in tmp_path.iterdir()}
        assert warmed and os.getpid() not in warmed  # before any task, in worker processes
        pids = list(workers.map(os.getpid, [()] * 40, window=2))
        assert os.getpid() not in pids and len(set(pids) | warmed) <= 2  # no other process started
        assert list(workers.map(abs, [(-i,) for i in range(10)])) == list(range(10))  # used again


def test_workers_left_before_their_first_task_end_quietly(recwarn):
    """A build that fails before its first task (an incomplete plan) leaves its started workers:
    their warm-up is cancelled without joblib's warning about cancelled tasks."""
    from imagenette_build.engine import Workers

    with Workers(2, "loky", warm_up=time.sleep, warm_args=(0.5,)):
        pass
    assert not [w for w in recwarn if "cancel" in str(w.message).lower()]
