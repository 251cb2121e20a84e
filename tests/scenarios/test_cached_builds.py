"""The cache of resized images across builds: it never changes the bytes, is never stale (a changed
recipe or source finds no entry), survives damaged entries and failed writes, and is used whatever
the parallel setting. (The cache module by itself: unit/test_cache.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from imagenette_build import cache as cache_mod
from imagenette_build import procs

from .. import faultkit as fk
from ..conftest import run_cli

STEM = "imagenette2-sample"


def _build(root, manifest_path, out, *args):
    # --keep-cache: these tests are about the cache across builds (the default removes it after one)
    r = run_cli("--imagenet", root, "--manifest", manifest_path, "--out", out, "--json", "-q", "--keep-cache", *args)
    assert r.returncode == 0, r.stderr
    reports = json.loads(r.stdout)
    return reports if isinstance(reports, list) else [reports]


def _packs(root):
    return sorted((root / cache_mod.PACKS).iterdir())


@pytest.fixture(scope="module")
def reference(sample, tmp_path_factory):
    """32 px, one process, no cache: the bytes every cached build must give."""
    root, manifest_path = sample
    out = tmp_path_factory.mktemp("ref")
    [report] = _build(root, manifest_path, out, "--size", "32", "--jobs", "1", "--no-cache")
    assert report["cache"] is None and not (out / fk.CACHE).exists()
    return report["sha256"]


def test_cold_then_warm_same_bytes(sample, tmp_path, reference):
    root, manifest_path = sample
    out = tmp_path / "out"
    [cold] = _build(root, manifest_path, out, "--size", "32", "--jobs", "2")
    assert cold["sha256"] == reference
    assert (cold["cache"]["hits"], cold["cache"]["misses"], cold["cache"]["written"]) == (0, 50, 50)
    assert cache_mod.count_entries(out / fk.CACHE) == 50
    assert len(_packs(out / fk.CACHE)) == 2  # one file per task (batches of 32), not one per image
    assert (out / fk.CACHE / "CACHEDIR.TAG").read_text().startswith("Signature: 8a477f597d28d172789f06886806bc55")
    [warm] = _build(root, manifest_path, out, "--size", "32", "--jobs", "2")
    assert warm["sha256"] == reference
    assert (warm["cache"]["hits"], warm["cache"]["misses"], warm["cache"]["written"]) == (50, 0, 0)


def test_every_parallel_setting_same_bytes_with_and_without_cache(sample, tmp_path, reference):
    """--jobs 1, 2, 4 with loky, threading and multiprocessing; a cold cache, a warm one shared by
    all runs, and none: one sha256."""
    root, manifest_path = sample
    shared = tmp_path / "shared-cache"
    runs = [("1", "loky", ["--cache", shared]), ("2", "loky", ["--cache", shared]), ("4", "loky", ["--no-cache"]),
            ("4", "threading", ["--cache", shared]), ("2", "threading", ["--no-cache"]),
            ("2", "multiprocessing", ["--cache", shared]), ("4", "loky", ["--cache", shared])]
    for i, (jobs, backend, cache_args) in enumerate(runs):
        [report] = _build(root, manifest_path, tmp_path / f"out{i}", "--size", "32", "--jobs", jobs,
                          "--backend", backend, *cache_args)
        assert report["sha256"] == reference, (jobs, backend, cache_args)
        if i > 0 and cache_args[0] == "--cache":
            assert report["cache"]["hits"] == 50, (jobs, backend)
    assert not (tmp_path / "out0" / fk.CACHE).exists()  # --cache DIR: nothing under --out


def test_changed_recipe_finds_no_entry(sample, tmp_path):
    root, manifest_path = sample
    out = tmp_path / "out"
    _build(root, manifest_path, out, "--size", "32")
    for option in (["--quality", "90"], ["--decode", "scaled"]):  # (every recipe field: unit/test_cache.py)
        [report] = _build(root, manifest_path, out, "--size", "32", *option)
        assert report["cache"]["hits"] == 0 and report["cache"]["misses"] == 50, option
        [fresh] = _build(root, manifest_path, tmp_path / "fresh", "--size", "32", "--no-cache", *option)
        assert report["sha256"] == fresh["sha256"], option


def test_changed_source_is_made_again_and_only_it(sample, tmp_path):
    root, manifest_path = sample
    copy = fk.copy_imagenet(root, tmp_path / "imagenet")
    out = tmp_path / "out"
    _build(copy, manifest_path, out, "--size", "32")
    victim = fk.class_files(copy, "train", "n03888257")[1]
    victim.write_bytes(fk.good_jpeg(301, 211))  # same name, same mtime, new content
    os.utime(victim, ns=(0, 0))
    [report] = _build(copy, manifest_path, out, "--size", "32")
    assert (report["cache"]["hits"], report["cache"]["misses"]) == (49, 1)
    [fresh] = _build(copy, manifest_path, tmp_path / "fresh", "--size", "32", "--no-cache")
    assert report["sha256"] == fresh["sha256"]


def test_damaged_entries_are_detected_and_made_again(sample, tmp_path, reference):
    """Five packs of 10 entries: one cut short, one with a bit flipped in a record, one whose index
    points an entry at another image's record, one emptied, one intact. Each damaged record is
    reported and made again, the emptied pack's images are made again (the same batch rewrites the
    same pack), and the bytes never change."""
    root, manifest_path = sample
    out = tmp_path / "out"
    _build(root, manifest_path, out, "--size", "32", "--batch-size", "10")
    cut, flipped, misplaced, emptied, _ = packs = _packs(out / fk.CACHE)
    assert len(packs) == 5
    cut.write_bytes(cut.read_bytes()[:-100])  # a power cut during the write: its last record is short
    data = bytearray(flipped.read_bytes())
    first = cache_mod.read_pack_index(str(flipped))[0]
    data[first["offset"] + cache_mod.RECORD_HEAD + 10] ^= 0x40  # one bit of the first image
    flipped.write_bytes(bytes(data))
    data = bytearray(misplaced.read_bytes())
    slots = cache_mod.read_pack_index(str(misplaced))
    slot0 = len(cache_mod.MAGIC) + 4 + 32  # the first entry's record offset
    data[slot0:slot0 + 8] = int(slots[1]["offset"]).to_bytes(8, "little")  # -> the second image's record
    misplaced.write_bytes(bytes(data))
    emptied.write_bytes(b"")
    [report] = _build(root, manifest_path, out, "--size", "32", "--batch-size", "10")
    assert report["sha256"] == reference
    got = report["cache"]
    assert (got["damaged"], got["hits"], got["misses"], got["written"]) == (3, 37, 13, 13), got
    assert len(cache_mod.read_pack_index(str(emptied))) == 10  # made again: the same batch, the same pack
    [again] = _build(root, manifest_path, out, "--size", "32", "--batch-size", "7")  # other batches
    assert again["sha256"] == reference
    assert (again["cache"]["hits"], again["cache"]["damaged"]) == (50, 0)


def test_sizes_are_cached_one_by_one(sample, tmp_path):
    """--size 32, then --size 32 --size 48: the 32 px images are reused, the 48 px ones made."""
    root, manifest_path = sample
    out = tmp_path / "out"
    [first] = _build(root, manifest_path, out, "--size", "32")
    r32, r48 = _build(root, manifest_path, out, "--size", "32", "--size", "48")
    assert r32["sha256"] == first["sha256"]
    assert (r32["cache"]["hits"], r48["cache"]["hits"], r48["cache"]["misses"]) == (50, 0, 50)


def test_full_size_and_no_cache_make_no_cache_folder(sample, tmp_path):
    root, manifest_path = sample
    [report] = _build(root, manifest_path, tmp_path / "full", "--size", "full")
    assert report["cache"] is None and not (tmp_path / "full" / fk.CACHE).exists()
    r = run_cli("--imagenet", root, "--manifest", manifest_path, "--out", tmp_path / "x", "--cache",
                tmp_path / "c", "--no-cache")
    fk.one_line_error(r, 2, "give --cache DIR or --no-cache, not both")


def test_failed_cache_writes_do_not_fail_the_build(sample, tmp_path, reference):
    """The packs folder is a file, so no entry can be written: the build still succeeds, with one
    warning, and the report counts the failures."""
    root, manifest_path = sample
    cache = tmp_path / "cache"
    (cache / "tmp").mkdir(parents=True)
    (cache / cache_mod.PACKS).write_text("not a folder")
    r = run_cli("--imagenet", root, "--manifest", manifest_path, "--out", tmp_path / "out", "--size", "32",
                "--cache", cache, "--json", "-q")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["sha256"] == reference and report["cache"]["write_errors"] == 50
    [warning] = r.stderr.splitlines()
    assert warning.startswith("imagenette-build: warning: 50 resized images could not be written to the cache")


def test_stale_temporary_entries_are_removed(sample, tmp_path):
    root, manifest_path = sample
    cache = tmp_path / "cache"
    (cache / "tmp").mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    host = procs.host()
    stale = cache / "tmp" / f"{host}-{dead}-{'a' * 64}"
    live = cache / "tmp" / f"{host}-{os.getpid()}-{'b' * 64}"
    elsewhere = cache / "tmp" / f"another.host-{dead}-{'c' * 64}"
    for p in (stale, live, elsewhere):
        p.write_bytes(b"half an entry")
    _build(root, manifest_path, tmp_path / "out", "--size", "32", "--cache", cache)
    assert not stale.exists() and live.exists() and elsewhere.exists()
