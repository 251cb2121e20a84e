"""Fixtures shared by the scenario tests."""

from __future__ import annotations

import pytest

from ..conftest import run_cli


@pytest.fixture(scope="module")
def built(sample, tmp_path_factory):
    """The sample built at 160 px and full size with `--jobs 2 --quiet`, its sums and reports beside
    the archives: (imagenet root, manifest path, output folder). Once per test module."""
    root, manifest_path = sample
    out = tmp_path_factory.mktemp("dist")
    r = run_cli("--imagenet", root, "--manifest", manifest_path, "--size", "160", "--size", "full",
                "--out", out, "--jobs", "2", "--quiet")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # --quiet
    return root, manifest_path, out
