"""Shared fixtures: small synthetic ImageNet copies made by the project's own generator."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from imagenette_build import manifest as manifests
from imagenette_build.samplegen import SampleSpec, generate

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"


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
