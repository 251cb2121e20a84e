"""Shards that train well (formats/shards.py): every split in at least 8 shards, so that DataLoader
workers and nodes each get some; samples in a seeded order that mixes the classes, the same bytes
on every run; every image once with its label; and Hugging Face batches of RGB images, grayscale
members included."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagenette_build import manifest as manifests

from .. import faultkit as fk
from ..conftest import run_cli

STEM = "imagenette2-sample-64"
FORMATS = ("--format", "tgz", "--format", "parquet", "--format", "webdataset")


@pytest.fixture(scope="module")
def shards(sample, tmp_path_factory):
    """The sample (40 train and 10 val images, 4 and 1 a class) at 64 px in every format, defaults."""
    root, manifest_path = sample
    out = tmp_path_factory.mktemp("dist")
    r = run_cli("--imagenet", root, "--manifest", manifest_path, "--size", "64", "--out", out, "-q", "-j", "2",
                *FORMATS)
    assert r.returncode == 0, r.stderr
    return root, Path(manifest_path), out


def _expected(manifest_path: Path, split: str) -> dict[str, int]:
    """{member: class index} of a split, from the manifest."""
    m = manifests.load_path(manifest_path)
    wnids = sorted(m.wnids)
    return {li.member: wnids.index(li.wnid) for li in m.listed_images() if li.member.startswith(split + "/")}


def _samples(out: Path, split: str) -> list[tuple[str, int]]:
    """(member, class index) of every WebDataset sample of a split, shard after shard, as written."""
    got = []
    for shard in sorted((out / f"{STEM}-wds").glob(f"{split}-*.tar")):
        with tarfile.open(shard) as tar:
            files = {m.name: tar.extractfile(m).read() for m in tar}
        for name, data in files.items():
            if name.endswith(".json"):
                meta = json.loads(data)
                assert int(files[name[:-len("json")] + "cls"]) == meta["label"]
                got.append((meta["member"], meta["label"]))
    return got


def test_every_split_is_eight_shards_and_each_of_two_workers_gets_samples(shards, monkeypatch):
    """One shard a split: with num_workers=2 the second worker raised "No samples found in dataset;
    perhaps you have fewer shards than workers". WebDataset deals whole shards to the workers of
    each node (round robin): with 8 shards, 2 workers, and 2 nodes of 2 workers, each gets 2 or 4."""
    wds = pytest.importorskip("webdataset")
    _, manifest_path, out = shards
    for split in ("train", "val"):
        assert sorted(p.name for p in (out / f"{STEM}-wds").iterdir() if p.name.startswith(split)) == \
            [f"{split}-{i:05d}-of-00008.tar" for i in range(8)]
        assert sorted(p.name for p in (out / f"{STEM}-parquet").iterdir() if p.name.startswith(split)) == \
            [f"{split}-{i:05d}-of-00008.parquet" for i in range(8)]
    urls = f"{out}/{STEM}-wds/train-{{00000..00007}}-of-00008.tar"
    for nodes, workers in ((1, 2), (2, 2)):
        seen = []
        for rank in range(nodes):
            for worker in range(workers):  # what torch's DataLoader tells each worker, and torchrun each node
                env = {"RANK": rank, "WORLD_SIZE": nodes, "WORKER": worker, "NUM_WORKERS": workers}
                for name, value in env.items():
                    monkeypatch.setenv(name, str(value))
                mine = [s["__key__"] for s in wds.WebDataset(urls, shardshuffle=False, nodesplitter=wds.split_by_node)]
                assert len(mine) == 40 // (nodes * workers)
                seen += mine
        assert sorted(seen) == sorted(m.rsplit(".", 1)[0] for m in _expected(manifest_path, "train"))


def test_samples_are_in_the_reported_seeded_order_with_the_classes_mixed(shards):
    """Samples were in member order, a class after another: a shuffle buffer gave batches of one
    class. They are now sorted by the sha256 of '<seed>:<member>' (the seed and the rule in the
    report), in WebDataset and Parquet alike; every image once, with its label and member path."""
    pq = pytest.importorskip("pyarrow.parquet")
    _, manifest_path, out = shards
    report = json.loads((out / f"{STEM}.json").read_text())
    for split in ("train", "val"):
        expected = _expected(manifest_path, split)
        samples = _samples(out, split)
        assert sorted(samples) == sorted(expected.items())  # every image once, with its class index
        for fmt in ("webdataset", "parquet"):
            order = report["outputs"][fmt]["order"]
            assert order["seed"] == 0 and "sha256('<seed>:<member path>')" in order["how"]
        documented = sorted(expected, key=lambda m: hashlib.sha256(f"{order['seed']}:{m}".encode()).digest()[:8])
        assert [m for m, _ in samples] == documented != sorted(expected)
        rows = [(r["image"]["path"], r["label"]) for shard in sorted((out / f"{STEM}-parquet").glob(f"{split}-*"))
                for r in pq.read_table(shard).to_pylist()]
        assert rows == samples
    first = [label for _, label in _samples(out, "train")[:10]]
    assert len(set(first)) >= 5  # (in member order: 3 classes, 4 images each)


def test_same_bytes_whatever_the_jobs_backend_layout_or_run(shards, sample_layouts, tmp_path):
    """The order is decided from the images written, not from when they come: --jobs 1 on threads
    from another layout, and a rerun into the same folder, give the same shards."""
    _, manifest_path, out = shards
    root, kaggle_manifest = sample_layouts["kaggle"]
    r = run_cli("--imagenet", root, "--manifest", kaggle_manifest, "--size", "64", "--out", tmp_path, "-q", "-j", "1",
                "--backend", "threading", "--no-cache", *FORMATS)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "SHA256SUMS").read_text() == (out / "SHA256SUMS").read_text()
    r = run_cli("--imagenet", root, "--manifest", kaggle_manifest, "--size", "64", "--out", tmp_path, "-q", *FORMATS)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "SHA256SUMS").read_text() == (out / "SHA256SUMS").read_text()


def test_skip_broken_gives_the_shards_of_the_images_written(sample, tmp_path):
    """An image that cannot be read, left out with --skip-broken in the same pass (this manifest
    generates no labels over all images, so there is no second pass), gives the same shards as a
    source without that image: order and cuts come from the images written."""
    root, manifest_path = sample
    broken = fk.copy_imagenet(root, tmp_path / "broken")
    victim = fk.class_files(broken, "train", "n02102040")[1]
    fk.install(victim, "truncated")
    missing = fk.copy_imagenet(root, tmp_path / "missing")
    (missing / victim.relative_to(broken)).unlink()
    for copy in (broken, missing):
        r = run_cli("--imagenet", copy, "--manifest", manifest_path, "--size", "64", "--out", tmp_path / copy.name,
                    "-q", "--skip-broken", "-j", "2", *FORMATS)
        assert r.returncode == 0, r.stderr
    sums = [{p: h for p, h in fk.parse_sums(tmp_path / name / "SHA256SUMS").items() if not p.endswith(".tgz")}
            for name in ("broken", "missing")]
    assert sums[0] == sums[1]
    assert len([p for p in sums[0] if "-wds/train-" in p]) == 8
    samples = _samples(tmp_path / "broken", "train")
    assert len(samples) == 39 and not any(m.endswith("/" + victim.name) for m, _ in samples)


def test_hugging_face_batches_stack_with_grayscale_members(shards, tmp_path):
    """Grayscale members stay grayscale in the shards, as published; a batch of Hugging Face rows
    failed to stack (mode L decodes to H x W, RGB to H x W x 3). The Image feature now says
    mode "RGB", which `datasets` decodes to, so a batch stacks without a convert."""
    datasets = pytest.importorskip("datasets")
    _, _, out = shards
    folder = out / f"{STEM}-parquet"
    ds = datasets.load_dataset("parquet", data_files={"train": str(folder / "train-*.parquet")}, split="train",
                               cache_dir=str(tmp_path / "hf"))
    raw = ds.cast_column("image", datasets.Image(decode=False))
    modes = Counter(Image.open(io.BytesIO(r["image"]["bytes"])).mode for r in raw)
    assert modes["L"] >= 1 and modes["RGB"] >= 1  # (the bytes as published)
    batch = ds.with_format("numpy")[:len(ds)]["image"]
    stacked = np.stack([image[:64, :64] for image in batch])  # (a crop: the images differ in size)
    assert stacked.shape == (len(ds), 64, 64, 3) and stacked.dtype == np.uint8
    assert ds.features["image"].mode == "RGB"
