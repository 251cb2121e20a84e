"""The helpers of `make bench-scale` (bench/scale.py, bench/scale_probe.py; never run in CI as a
benchmark): its smaller corpora are the files `sample-imagenet --per-class N` writes, and the probe
times a real build from inside it."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from ..conftest import run_cli

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for i in range(3):
        Image.new("RGB", (40 + 8 * i, 32), (70 * i, 90, 160)).save(folder / f"p{i}.JPEG", quality=85)
    return folder


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.JPEG"))}


def test_a_linked_subset_is_what_sample_imagenet_writes(tmp_path, photos, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    scale = importlib.import_module("scale")
    try:
        for n in (6, 2):
            r = run_cli("sample-imagenet", tmp_path / f"gen-{n}", "--manifest", "imagenet-1k", "--per-class", n,
                        "--photos", photos, "-q", "--jobs", "1")
            assert r.returncode == 0, r.stderr
        scale.link_subset(tmp_path / "gen-6", tmp_path / "linked-2", 2)
    finally:
        sys.modules.pop("scale", None)
    linked, written = _files(tmp_path / "linked-2"), _files(tmp_path / "gen-2")
    assert len(written) == 1000 * (2 + 1) and linked == written
    one = next(iter(linked))
    assert (tmp_path / "linked-2" / one).stat().st_nlink == 2  # a link, not a copy


def test_the_probe_times_a_build_from_inside(tmp_path, photos):
    r = run_cli("sample-imagenet", tmp_path / "s", "--manifest", "imagenet100-cmc", "--per-class", 2,
                "--photos", photos, "-q", "--jobs", "1")
    assert r.returncode == 0, r.stderr
    result = tmp_path / "r.json"
    probe = subprocess.run([sys.executable, str(BENCH / "scale_probe.py"), str(result), "--imagenet",
                            str(tmp_path / "s"), "--manifest", "imagenet100-cmc", "--size", "32", "--out",
                            str(tmp_path / "out"), "--jobs", "2", "--quiet"], capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr
    r = json.loads(result.read_text())
    m = r["marks"]
    assert r["exit"] == 0
    assert 0 < m["scan_start"] < m["scan_end"] <= m["first_image"] <= m["last_image"] < m["stage_commit"] < m["end"]
    assert m["cpu_first"] <= m["cpu_last"] and m["main_cpu_first"] <= m["main_cpu_last"]
    assert r["parent_peak_rss"] > 10e6 and r["parent_cpu"] > 0
    assert len(r["workers"]) == 2 and all(w["peak_rss"] > 10e6 and w["cpu"] > 0 for w in r["workers"])
