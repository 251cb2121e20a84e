"""What a long run tells its user, given to the stages as one explicit object.

The stages (scan, resize, pack, commit, verify) never print: they ask their `Progress` for a bar,
say a note or a warning through it, and announce the steps of a commit (`stage`). The command line
and the Python API make one (`quiet` silences bars and notes; warnings always show: they say the
data is not what was asked for). A test can pass its own, to stop a build at a known point.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from tqdm import tqdm

from .errors import PipeClosed

PROG = "imagenette-build"


class _Stderr:
    """sys.stderr (as it is at each write), where a reader that went away is a `PipeClosed`: the
    bars' writes happen inside the stages, which would take the OSError for a failed write of theirs."""

    def write(self, text: str) -> int:
        try:
            return sys.stderr.write(text)
        except BrokenPipeError:
            raise PipeClosed() from None

    def flush(self) -> None:
        try:
            sys.stderr.flush()
        except BrokenPipeError:
            raise PipeClosed() from None

    def __getattr__(self, name: str):  # fileno, isatty, encoding: tqdm asks for them
        return getattr(sys.stderr, name)


STDERR = _Stderr()


class Progress:
    """`quiet`: no bars and no notes. `results`: print the lines that say what was made (`result`) on
    stdout, even when quiet (a script reads them; the command line does, unless --json)."""

    def __init__(self, quiet: bool = False, results: bool = False):
        self.quiet = quiet
        self.results = results

    def bar(self, desc: str, total: int | None = None, unit: str = "it", unit_bytes: bool = False,
            iterable: Iterable | None = None) -> tqdm:
        """A progress bar on stderr (a silent one when quiet); use it as a context manager, or
        iterate over it when given `iterable`."""
        scale = {"unit_scale": True, "unit_divisor": 1024} if unit_bytes else {}
        return tqdm(iterable=iterable, total=total, desc=desc, unit="B" if unit_bytes else unit, file=STDERR,
                    disable=self.quiet, dynamic_ncols=True, mininterval=0.5, **scale)

    def note(self, text: str) -> None:
        """A line for the user (what was written, what was removed)."""
        if not self.quiet:
            print(text, file=STDERR, flush=True)

    def result(self, text: str) -> None:
        """A line saying what was made (`wrote <path> ...`), on stdout: the run's result, not its progress."""
        if self.results:
            print(text, flush=True)

    def warn(self, text: str) -> None:
        print(f"{PROG}: warning: {text}", file=STDERR, flush=True)

    def stage(self, name: str) -> None:
        """The run reached a named step: `commit` (outputs complete under temporary names), then
        per size `commit-archive`, `commit-report`, `commit-sums`. Nothing to show here; a test's
        Progress may stop there."""
