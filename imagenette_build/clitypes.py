"""What the command line's options accept, beyond click's own types: sizes in pixels, sizes in
bytes, and the --jobs check every command that starts workers shares."""

from __future__ import annotations

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
    """A number of bytes: 4096, 64K, 256M, 1G (powers of 1024)."""

    name = "SIZE"
    UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        text = str(value).strip().upper().removesuffix("B").removesuffix("I")
        number, unit = (text[:-1], text[-1]) if text[-1:] in "KMG" else (text, "")
        if not number.isdigit() or not 1 <= int(number) * self.UNITS[unit] <= 1 << 40:
            self.fail(f"{value!r} is not a size in bytes (like 256M, 64K; 1 byte to 1 TiB)", param, ctx)
        return int(number) * self.UNITS[unit]


def checked_jobs(jobs: int | None) -> int:
    """--jobs, or every core; more than JOBS_PER_CORE per core is refused (64 workers on 2 cores
    took 2.9 GB for 240 images and were no faster)."""
    if jobs is None:
        return default_jobs()
    if jobs > max_jobs():
        raise click.UsageError(f"--jobs {jobs}: at most {max_jobs()} ({JOBS_PER_CORE} per core; this process may "
                               f"use {default_jobs()} cores): more workers only take memory")
    return jobs
