"""settings: every environment variable the tool reads, read in one place, once, and checked (a
bad value is one line naming the variable); the stages use the installed settings, never the
environment, so a test sets them."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from imagenette_build import procs, resample, settings, toolchain
from imagenette_build.errors import UserError
from imagenette_build.settings import DEFAULT_MTIME, ENV, MAX_MTIME, Settings


@pytest.mark.parametrize("key,value,expected", [
    ("mtime", "0", 0), ("mtime", str(MAX_MTIME), MAX_MTIME), ("mtime", "1700000000", 1700000000),
    ("tmpdir", "/tmp/x", Path("/tmp/x")),
    ("direct_io", "1", "1"), ("direct_io", "auto", "auto"),
    ("resampler", "portable", "portable"), ("resample_engine", "numpy", "numpy"),
    ("connect_timeout", "2.5", 2.5), ("no_workers_timeout", "120", 120.0),
])
def test_each_variable_sets_its_setting(key, value, expected):
    assert getattr(Settings.from_environ({ENV[key]: value}), key) == expected


@pytest.mark.parametrize("key,value", [
    ("mtime", "²"), ("mtime", "-1"), ("mtime", str(MAX_MTIME + 1)), ("mtime", "1e9"), ("mtime", "1" * 30), ("mtime", " 12"),
    ("direct_io", "yes"), ("resampler", "fast"), ("resample_engine", "cuda"),
    ("connect_timeout", "abc"), ("connect_timeout", "0"), ("connect_timeout", "-1"), ("connect_timeout", "1e7"),
    ("no_workers_timeout", "nan"),
])
def test_a_bad_value_is_one_line_naming_the_variable(key, value):
    with pytest.raises(UserError, match=rf"^{ENV[key]}='?{re.escape(value[:40])}"):
        Settings.from_environ({ENV[key]: value})


def test_unset_or_empty_gives_the_defaults():
    assert Settings.from_environ({}) == Settings.from_environ({v: "" for v in ENV.values()}) == Settings()
    assert Settings().mtime == DEFAULT_MTIME


def test_the_stages_use_the_installed_settings_not_the_environment(monkeypatch):
    before = settings._installed
    try:
        monkeypatch.setenv(ENV["resample_engine"], "numba")
        settings.install(Settings(resample_engine="numpy", resampler="portable", connect_timeout=3.0))
        assert resample.engine() == "numpy"
        assert not toolchain.resampler_is_native()
        from imagenette_build import engine
        assert engine.connect_timeout() == 3.0
    finally:
        settings.install(before)


def test_no_module_reads_the_environment_but_settings():
    package = Path(settings.__file__).parent
    readers = []
    for path in package.rglob("*.py"):
        text = path.read_text()
        for m in re.finditer(r"os\.environ\.get\(|os\.getenv\(|os\.environ\[", text):
            line = text[:m.start()].count("\n") + 1
            readers.append(f"{path.relative_to(package)}:{line}")
    # procs sets PYTHONWARNINGS for the worker processes it starts (it reads only its own setting)
    assert all(r.startswith(("settings.py", "procs.py")) for r in readers), readers


def test_most_jobs_is_four_per_core():
    assert procs.max_jobs() == procs.JOBS_PER_CORE * procs.default_jobs() == 4 * len(os.sched_getaffinity(0))
