"""Read-ahead (prefetch.py, SourceRef.prefetch): bounded, a hint only, never changes the output."""

from __future__ import annotations

import os
import time
from unittest import mock

from imagenette_build.prefetch import Prefetcher
from imagenette_build.sources import SourceRef
from imagenette_build.transform import Recipe
from imagenette_build.worker import Task, process_batch


class _Ref:
    def __init__(self, i: int, seen: list[int]):
        self.i, self.seen = i, seen

    def prefetch(self) -> None:
        self.seen.append(self.i)


def _settled(seen: list[int], expected: int) -> bool:
    """True once the thread has prefetched `expected` refs and stays there."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(seen) < expected:
        time.sleep(0.005)
    time.sleep(0.05)
    return len(seen) == expected


def test_prefetcher_stays_a_bounded_distance_ahead_in_order():
    seen: list[int] = []
    with Prefetcher([_Ref(i, seen) for i in range(100)], ahead=10) as ahead:
        assert _settled(seen, 10)
        ahead.advance(25)
        assert _settled(seen, 35)
        ahead.advance(100)
        assert _settled(seen, 100)
    assert seen == list(range(100))


def test_prefetcher_close_returns_while_it_waits():
    seen: list[int] = []
    ahead = Prefetcher([_Ref(i, seen) for i in range(1000)], ahead=3)
    assert _settled(seen, 3)
    ahead.close()
    assert not ahead._thread.is_alive() and seen == [0, 1, 2]


def test_source_ref_prefetch_asks_for_exactly_its_bytes(tmp_path):
    path = tmp_path / "train.tar"
    path.write_bytes(bytes(4096))
    calls = []
    real = os.posix_fadvise
    with mock.patch("os.posix_fadvise", side_effect=lambda *a: (calls.append(a[1:]), real(*a))):
        SourceRef(str(path), 512, 1000).prefetch()
        SourceRef(str(path)).prefetch()
    assert calls == [(512, 1000, os.POSIX_FADV_WILLNEED), (0, 0, os.POSIX_FADV_WILLNEED)]


def test_source_ref_prefetch_of_a_missing_file_is_silent_and_read_reports_it(tmp_path):
    ref = SourceRef(str(tmp_path / "gone.JPEG"))
    ref.prefetch()  # nothing to say: the read does
    [result] = process_batch(Task([ref], (64,), Recipe(), prefetch=True)).images
    assert result.outputs is None and "gone.JPEG" in result.error and "no such file" in result.error


def test_process_batch_same_output_with_and_without_prefetch(sample):
    root, _ = sample
    refs = [SourceRef(str(p)) for p in sorted((root / "train").rglob("*.JPEG"))[:6]]
    plain = process_batch(Task(refs, (64, None), Recipe())).images
    assert process_batch(Task(refs, (64, None), Recipe(), prefetch=True)).images == plain
    assert all(r.error is None for r in plain)
