"""The command line with a Progress that stops a build at a known point, for tests that signal,
kill or race a build there (test_interrupt, test_hostile_build, test_loaders).

    python tests/paused_cli.py POINT SECONDS [imagenette-build arguments...]

POINT (comma-separated): `scan` (after the first class is scanned), `resize` (when half the images
are made), `commit`, `commit-archive`, `commit-report`, `commit-sums` (the steps of a commit). At
each, the build prints `test-pause <point>` on stderr and sleeps SECONDS. The product reads no
environment variable for this: the Progress is given to `cli.main`.
"""

from __future__ import annotations

import sys
import time

from imagenette_build import cli
from imagenette_build.progress import Progress


def pausing(points: set[str], seconds: float):
    def pause(point: str) -> None:
        if point in points:
            print(f"test-pause {point}", file=sys.stderr, flush=True)
            time.sleep(seconds)

    class Pausing(Progress):
        def bar(self, desc, total=None, unit="it", unit_bytes=False, iterable=None):
            bar = super().bar(desc, total, unit, unit_bytes, iterable)
            if desc == "scan":
                return _after_first(bar, lambda: pause("scan"))
            if desc == "resize":
                update, half, done = bar.update, (total or 0) // 2, [0]

                def update_then_pause(n=1):
                    update(n)
                    before, done[0] = done[0], done[0] + n
                    if before < half <= done[0]:
                        pause("resize")

                bar.update = update_then_pause
            return bar

        def stage(self, name):
            pause(name)

    return Pausing


def _after_first(items, then):
    for i, item in enumerate(items):
        yield item
        if i == 0:
            then()


if __name__ == "__main__":
    point, seconds, *args = sys.argv[1:]
    cli.main(args, progress=pausing(set(point.split(",")), float(seconds)))
