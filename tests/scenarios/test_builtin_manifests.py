"""The built-in manifests of published subsets build from a sample ImageNet, and `classes
--manifests` lists every built-in manifest with its source.

One sample of all 1000 classes (`sample-imagenet --manifest imagenet-1k --per-class 1`: a train and
a val image a class, tiny photos as content so that it takes seconds) holds every class of every
subset; each subset is built from it at 16 px."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from imagenette_build import manifest as manifests
from imagenette_build.members import SUFFIX, parse

from ..conftest import run_cli

SUBSETS = ("imagenet-1k", "imagenet-r-200", "imagenet-a-200", "imagenet100-cmc")


@pytest.fixture(scope="module")
def sample_1k(tmp_path_factory):
    photos = tmp_path_factory.mktemp("photos")
    for i in range(3):
        Image.new("RGB", (48 + 8 * i, 36), (80 * i, 120, 200)).save(photos / f"p{i}.JPEG", quality=85)
    root = tmp_path_factory.mktemp("imagenet") / "sample"
    r = run_cli("sample-imagenet", root, "--manifest", "imagenet-1k", "--per-class", "1", "--photos", photos, "-q")
    assert r.returncode == 0, r.stderr
    return root


@pytest.mark.parametrize("name", SUBSETS)
def test_each_subset_builds_its_classes_and_reports_its_source(sample_1k, tmp_path, name):
    m = manifests.load(name)
    r = run_cli("--imagenet", sample_1k, "--manifest", name, "--size", "16", "--out", tmp_path, "--quiet",
                "--jobs", "1", "--no-cache")
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / f"{name}-16.json").read_text())
    assert [c["wnid"] for c in report["classes"]] == sorted(m.wnids)
    assert report["counts"] == {"train": {w: 1 for w in m.wnids}, "val": {w: 1 for w in m.wnids}}
    assert report["images"] == 2 * len(m.wnids)
    assert report["root_files"] == []  # no generated noisy labels (docs/manifest.md)
    assert report["manifest"]["source"] == m.source.to_json()
    members = parse((tmp_path / f"{name}-16{SUFFIX}").read_text(), "members")
    assert {p.split("/")[1] for p in members} == set(m.wnids)  # only the subset's classes, from 1000
    assert {p.split("/")[0] for p in members} == {"train", "val"}


def test_classes_manifests_lists_every_builtin_with_its_source():
    r = run_cli("classes", "--manifests", "--json")
    assert r.returncode == 0, r.stderr
    listed = json.loads(r.stdout)
    assert [e["name"] for e in listed] == manifests.builtin_names()
    for entry in listed:
        m = manifests.load(entry["name"])
        assert entry == {"name": m.name, "classes": len(m.classes), "split": m.split.policy,
                         "description": m.description, "source": m.source.to_json()}
    by_name = {e["name"]: e for e in listed}
    assert (by_name["imagenet-1k"]["classes"], by_name["imagenet100-cmc"]["classes"]) == (1000, 100)
    assert by_name["imagenet100-cmc"]["source"]["url"] == "https://github.com/HobbitLong/CMC"

    text = run_cli("classes", "--manifests")
    assert text.returncode == 0, text.stderr
    for entry in listed:
        assert f"{entry['name']}  {entry['classes']} classes, split {entry['split']}\n" in text.stdout
        assert f"  source: {entry['source']['url']}" in text.stdout
    assert "  paper: Dan Hendrycks, Kevin Zhao" in text.stdout


@pytest.mark.parametrize("args", [["tench", "--manifests"], ["--manifests", "--preview", "x.png"]])
def test_classes_manifests_takes_no_pattern_or_preview(tmp_path, args):
    r = run_cli("classes", *args, cwd=tmp_path)
    assert r.returncode == 2 and r.stdout == "" and not list(tmp_path.iterdir())
    assert r.stderr.startswith("imagenette-build: error: --manifests lists every built-in manifest")
    assert r.stderr.count("\n") == 1
