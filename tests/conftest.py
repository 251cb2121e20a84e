"""Shared fixtures: small synthetic ImageNet copies made by the project's own generator, the
command line in a subprocess, and the settings of the property tests (fuzzkit.py).

tests/unit/ holds a test file per module of the package (tests/unit/sources/ and tests/unit/tarwriter/
for the subpackages); tests/scenarios/ the whole-CLI and multi-module runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from imagenette_build import manifest as manifests
from imagenette_build.samplegen import SampleSpec, generate

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"

# The property tests: short in CI ("ci"); HYPOTHESIS_PROFILE=long for a longer run (fuzzkit.py).
settings.register_profile("ci", max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("long", max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "2000")), deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config):
    config.addinivalue_line("markers", "fuzz: a property test of a reader of untrusted input (fuzzkit.py)")


@pytest.fixture
def use_settings():
    """`use_settings(direct_io="1", ...)` installs those settings (settings.py) for this test: the
    stages read them, never the environment."""
    from dataclasses import replace

    from imagenette_build import settings

    before = settings._installed
    yield lambda **kw: settings.install(replace(settings.Settings(), **kw))
    settings.install(before)


def run_cli(*args, env=None, cwd=None, timeout=None):
    """The real command line in a subprocess: real exit codes, real stderr."""
    return subprocess.run([sys.executable, "-m", "imagenette_build.cli", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


@pytest.fixture(scope="session")
def sample_layouts(tmp_path_factory):
    """The same 4-per-class imagenette2 subset in every supported layout: {layout: (root, manifest)}."""
    base = tmp_path_factory.mktemp("imagenet")
    m = manifests.load("imagenette2")
    out = {}
    for layout in ("folders", "flat-devkit", "flat-kaggle-csv", "kaggle"):
        root = base / layout
        stats = generate(SampleSpec(out=root, layout=layout, per_class=4), m, jobs=1)
        out[layout] = (root, stats["manifest"])
    return out


@pytest.fixture(scope="session")
def sample(sample_layouts):
    return sample_layouts["folders"]


@pytest.fixture(scope="session")
def archived_layouts(tmp_path_factory):
    """The same subset as `sample_layouts`, as the downloads come, never extracted: the original
    ILSVRC tars, Hugging Face's tar.gz shards and its parquet shards. {layout: (root, manifest)}."""
    base = tmp_path_factory.mktemp("imagenet-archived")
    m = manifests.load("imagenette2")
    out = {}
    for layout in ("ilsvrc-tars", "hf-shards", "hf-parquet"):
        root = base / layout
        stats = generate(SampleSpec(out=root, layout=layout, per_class=4), m, jobs=1)
        out[layout] = (root, stats["manifest"])
    return out


@pytest.fixture(scope="module")
def workdir():
    """A folder for the property tests, reused by every example of a test (hypothesis refuses
    function-scoped fixtures such as tmp_path)."""
    d = Path(tempfile.mkdtemp(prefix="fuzz-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def new_dataset(tmp_path_factory):
    """A new dataset as `new-manifest six --random 6 --seed 11` writes it (split random, 30 % val,
    generated noisy labels), and 20 images a class of it in two layouts: (manifest, path, {layout: root})."""
    base = tmp_path_factory.mktemp("new-dataset")
    path = base / "six.toml"
    r = run_cli("new-manifest", "six", "--random", "6", "--seed", "11", "--out", path)
    assert r.returncode == 0, r.stderr
    m = manifests.load_path(path)
    roots = {}
    for layout in ("folders", "flat-devkit"):
        roots[layout] = base / layout
        generate(SampleSpec(out=roots[layout], layout=layout, per_class=20), m, jobs=1)
    return m, path, roots


# What the documented algorithms give for `new_dataset` on every machine and Python version: the
# sha256 of its member list (the seeded random split) and of its noisy_six.csv.
GOLDEN_SPLIT = "6373e4d5341be1359054721b0bc3f1891c50dfb54cf84bc3c131fcd7ba9d632d"


GOLDEN_NOISY = "d9471c3625104bd4b426ac6f6315c4cd9a8cf834ceaf4ad67052c13c0ec3ade1"
