"""Committing a size's outputs (commit.py): what the report says about fidelity, and the report
itself."""

from __future__ import annotations

import hashlib
import json

import imagenette_build as ib
from imagenette_build import commit, toolchain
from imagenette_build.transform import Recipe


def test_a_jpeg_library_that_is_not_turbo_is_said(monkeypatch):
    real = toolchain.features.check_feature
    monkeypatch.setattr(toolchain.features, "check_feature", lambda f: False if f == "libjpeg_turbo" else real(f))
    assert "not libjpeg-turbo" in toolchain.jpeg_problem()
    facts = commit.fidelity(Recipe())
    assert facts["published_recipe"] and not facts["published_bytes_possible"]
    assert "cannot be byte-identical to the published images" in facts["problems"][0]


def test_fidelity_names_each_field_that_departs_from_the_published_recipe(monkeypatch):
    monkeypatch.setattr(toolchain, "jpeg_problem", lambda: None)  # (the real one: the test above)
    assert commit.fidelity(Recipe()) == {"recipe": "fastai-2018", "published_recipe": True,
                                         "published_bytes_possible": True, "problems": []}
    facts = commit.fidelity(Recipe(filter="lanczos", quality=90))
    assert facts == {"recipe": "custom", "published_recipe": False, "published_bytes_possible": False,
                     "problems": ["not the published recipe (filter lanczos, quality 90)"]}


REPORT_KEYS = ["archive", "stem", "size", "manifest", "source", "options", "images", "counts", "classes", "skipped",
               "root_files", "outputs", "fidelity", "cache", "archive_bytes", "sha256", "md5", "md5_first_mib",
               "tar_sha256", "tar_members", "members_sha256", "toolchain"]


def test_the_report_of_a_small_build(sample, tmp_path):
    """Built in this process (the sample at 8 px, one job): the report's fields, in their order,
    and what they say about the files beside it."""
    root, manifest_path = sample
    resized, full = ib.build(root, manifest=str(manifest_path), sizes=[8, "full"], out=tmp_path, jobs=1,
                             no_cache=True)
    assert list(resized) == REPORT_KEYS and list(full) == REPORT_KEYS
    archive = tmp_path / resized["archive"]
    assert (resized["archive"], resized["stem"], resized["size"]) == ("imagenette2-sample-8.tgz",
                                                                      "imagenette2-sample-8", "8")
    assert resized["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert resized["archive_bytes"] == archive.stat().st_size
    assert resized["outputs"]["tgz"]["files"] == [{"path": resized["archive"], "bytes": resized["archive_bytes"],
                                                   "sha256": resized["sha256"], "md5": resized["md5"]}]
    assert resized["images"] == 50 and resized["skipped"] == [] and resized["cache"] is None
    assert [c["wnid"] for c in resized["classes"]] == sorted(c["wnid"] for c in resized["classes"])
    assert resized["options"]["sizes"] == ["8", "full"] and resized["options"]["recipe"]["name"] == "fastai-2018"
    assert resized["fidelity"]["recipe"] == "fastai-2018"
    # full size: the sources' bytes, no recipe and no fidelity to speak of
    assert full["options"]["recipe"] == "original bytes" and full["fidelity"] is None
    assert json.loads((tmp_path / "imagenette2-sample.json").read_text()) == full
