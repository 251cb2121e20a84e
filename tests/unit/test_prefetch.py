"""Read-ahead (prefetch.py): a thread that stays a bounded distance ahead of the build, in order, and
stops when closed. (SourceRef.prefetch: unit/sources/test_base.py; a batch read with and without
it: unit/test_worker.py.)"""

from __future__ import annotations

import time

from imagenette_build.prefetch import Prefetcher


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
