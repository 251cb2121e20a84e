"""Read-ahead of the source files, so that cold files are read from the disk while earlier images
are decoded.

A user's ImageNet copy is mostly not in the page cache (150 GB). A worker that opens and reads each
file in turn waits for the disk on every image; `Prefetcher` walks the plan a bounded number of
images ahead of the results and asks the kernel to start reading each file (`SourceRef.prefetch`:
open, POSIX_FADV_WILLNEED, close). The kernel reads asynchronously, the thread only pays for the
open, and the workers then find inode and data cached. Only a hint: no data passes through here,
errors are left to the real read, and the output does not depend on it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from .sources import SourceRef

AHEAD = 512  # images read ahead of the last result: ~75 MB of typical ImageNet JPEGs


class Prefetcher:
    """A thread that prefetches `refs` in order, at most `ahead` images past `advance`'s count."""

    def __init__(self, refs: Iterable[SourceRef], ahead: int = AHEAD):
        self._refs = refs
        self._ahead = ahead
        self._consumed = 0
        self._stopped = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="imagenette-build prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for i, ref in enumerate(self._refs):
            with self._cond:
                while not self._stopped and i >= self._consumed + self._ahead:
                    self._cond.wait()
                if self._stopped:
                    return
            ref.prefetch()

    def advance(self, n: int) -> None:
        """`n` more images are done: the window moves on."""
        with self._cond:
            self._consumed += n
            self._cond.notify()

    def close(self) -> None:
        """Stop; waits for the file being opened, at most a few seconds (an open that hangs on a dead
        network mount is left to the daemon thread)."""
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join(timeout=5)

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
