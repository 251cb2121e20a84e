"""The environment variables a run reads, read here and nowhere else: once per run
(`Settings.from_environ`, by the command line and the Python API), checked (a bad value is one
line naming the variable), and installed for the process (`install`); worker processes install
the parent's (`worker.Task` carries them). The stages ask `current()`, never `os.environ`, so a
test sets a `Settings`, not the environment.

| variable | setting | used by |
| --- | --- | --- |
| SOURCE_DATE_EPOCH | mtime: the members' modification time | tarwriter, formats |
| IMAGENETTE_BUILD_TMPDIR | tmpdir: where the spill file of compressed shards goes | sources.spill |
| IMAGENETTE_BUILD_DIRECT_IO | direct_io: 0, 1 or auto (O_DIRECT for full-size archives) | tarwriter.directio |
| IMAGENETTE_BUILD_RESAMPLER | resampler: native, or portable (the port even on pillow-simd) | toolchain |
| IMAGENETTE_BUILD_RESAMPLE_ENGINE | resample_engine: numba, or numpy (the port without numba) | resample |
| IMAGENETTE_BUILD_CONNECT_TIMEOUT | connect_timeout: seconds to reach a Dask scheduler | engine |
| IMAGENETTE_BUILD_NO_WORKERS_TIMEOUT | no_workers_timeout: seconds a cluster may have no worker | engine |

(IMAGENETTE_BUILD_SCHEDULER is the `--scheduler` option's variable, read by its declaration.)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

DEFAULT_MTIME = 1612569600  # 2021-02-06 00:00:00 UTC, the date of the current imagenette2 file list
MAX_MTIME = 8 ** 11 - 1  # what a tar header's mtime field holds, as GNU tar reads it (2242-03-16)
ENV = {
    "mtime": "SOURCE_DATE_EPOCH",
    "tmpdir": "IMAGENETTE_BUILD_TMPDIR",
    "direct_io": "IMAGENETTE_BUILD_DIRECT_IO",
    "resampler": "IMAGENETTE_BUILD_RESAMPLER",
    "resample_engine": "IMAGENETTE_BUILD_RESAMPLE_ENGINE",
    "connect_timeout": "IMAGENETTE_BUILD_CONNECT_TIMEOUT",
    "no_workers_timeout": "IMAGENETTE_BUILD_NO_WORKERS_TIMEOUT",
}
SCHEDULER_ENV = "IMAGENETTE_BUILD_SCHEDULER"
CHOICES = {"direct_io": ("auto", "0", "1"), "resampler": ("native", "portable"), "resample_engine": ("numba", "numpy")}


@dataclass(frozen=True)
class Settings:
    mtime: int = DEFAULT_MTIME
    tmpdir: Path | None = None
    direct_io: str = "auto"
    resampler: str = "native"
    resample_engine: str = "numba"
    connect_timeout: float = 10.0
    no_workers_timeout: float = 60.0

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings the environment gives (unset or empty: the default); a value that cannot be
        one is a UserError naming the variable."""
        environ = os.environ if environ is None else environ
        given = {key: environ[var] for key, var in ENV.items() if environ.get(var, "").strip()}
        values = {}
        for key, text in given.items():
            var = ENV[key]
            if key != "mtime":  # SOURCE_DATE_EPOCH is digits alone, as reproducible-builds.org defines it
                text = text.strip()
            if key == "mtime":
                # plain ASCII digits that fit a tar header: str.isdigit() took "²" (then int() raised)
                if not (text.isascii() and text.isdigit()) or len(text) > 20 or int(text) > MAX_MTIME:
                    raise UserError(f"{var}={text[:40]!r}: must be a whole number of seconds from 0 to {MAX_MTIME} "
                                    "(what a tar header holds)")
                values[key] = int(text)
            elif key == "tmpdir":
                values[key] = Path(text)
            elif key in CHOICES:
                if text not in CHOICES[key]:
                    raise UserError(f"{var}={text[:40]!r}: give {', '.join(CHOICES[key])}")
                values[key] = text
            else:
                values[key] = _seconds(var, text)
        return cls(**values)


def _seconds(var: str, text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < 1e6:
        raise UserError(f"{var}={text[:40]}: not a number of seconds")
    return seconds


_installed: Settings | None = None


def install(settings: Settings) -> None:
    """The settings of this process's run (the parent's, in a worker)."""
    global _installed
    _installed = settings


def current() -> Settings:
    """The installed settings; before any run installed some (a library call, `--version`), the
    environment's, read once."""
    if _installed is None:
        install(Settings.from_environ())
    return _installed
