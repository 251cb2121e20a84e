"""What the command line's options accept, beyond click's own types: sizes in pixels, sizes in
bytes, and the --jobs check every command that starts workers shares."""

from __future__ import annotations

import re

import click

from .engine import JOBS_PER_CORE, default_jobs, max_jobs
from .limits import MAX_SIZE, size_out_of_range


class SizeType(click.ParamType):
    """A shortest-side size in pixels, or `full` for the original bytes."""

    name = "SIZE"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, int):
            return value
        if str(value).lower() == "full":
            return None
        try:
            size = int(value)
        except ValueError:
            self.fail(f"{value!r} is not a size: give pixels (like 160) or 'full'", param, ctx)
        if not 1 <= size <= MAX_SIZE:
            self.fail(size_out_of_range(size), param, ctx)
        return size


class ByteSize(click.ParamType):
    """A number of bytes: 4096, 64K, 256M, 1G (powers of 1024; any case, with B, i or iB after a unit,
    B after none). Anything else is a usage error, never another exception (str.isdigit took '²',
    which int() refuses; '' and 'iB' left nothing to index)."""

    name = "SIZE"
    UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    # ASCII digits only, at most 15 of them after leading zeros (int() refuses 4,301 digits; 1 TiB has 13)
    SPELLING = re.compile(r"\s*0*([0-9]{1,15})\s*(?:([KMG])I?B?|B?)\s*", re.ASCII | re.IGNORECASE)

    def convert(self, value, param, ctx):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        m = self.SPELLING.fullmatch(str(value))
        size = int(m[1]) * self.UNITS[(m[2] or "").upper()] if m else 0
        if not 1 <= size <= 1 << 40:
            self.fail(f"{value!r} is not a size in bytes (like 256M, 64K; 1 byte to 1 TiB)", param, ctx)
        return size


def checked_jobs(jobs: int | None) -> int:
    """--jobs, or every core; more than JOBS_PER_CORE per core is refused (64 workers on 2 cores
    took 2.9 GB for 240 images and were no faster)."""
    if jobs is None:
        return default_jobs()
    if jobs > max_jobs():
        raise click.UsageError(f"--jobs {jobs}: at most {max_jobs()} ({JOBS_PER_CORE} per core; this process may "
                               f"use {default_jobs()} cores): more workers only take memory")
    return jobs
