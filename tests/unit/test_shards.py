"""The shard folders (formats/shards.py): how a split is cut into shards, the seeded order of the
samples, and the spool that puts images handed over in member order into that order."""

from __future__ import annotations

import hashlib
import json
import os
import tarfile

from hypothesis import given
from hypothesis import strategies as st

from imagenette_build.formats import Context
from imagenette_build.formats.shards import MIN_SHARDS, SEED, order_key, shard_counts
from imagenette_build.formats.webdataset import WebDatasetShards
from imagenette_build.plan import PlannedImage
from imagenette_build.provenance import Origin

ORIGIN = Origin("0" * 64, "1" * 64)  # (what the worker found: not looked at here)


@given(st.lists(st.integers(1, 1000), max_size=300), st.integers(1, 5000), st.integers(1, 16))
def test_shards_hold_every_image_once_at_least_the_minimum_and_at_most_the_bound(sizes, bound, minimum):
    counts = shard_counts(sizes, bound, minimum)
    assert sum(counts) == len(sizes) and all(c > 0 for c in counts)
    assert len(counts) >= min(len(sizes), minimum)
    start = 0
    for c in counts:
        assert sum(sizes[start:start + c]) <= bound or c == 1  # (a larger image: a shard of its own)
        start += c
    parts = min(len(sizes), minimum)
    if sizes and sum(sizes) <= bound * parts and max(sizes) * -(-len(sizes) // parts) <= bound:
        assert len(counts) == parts and max(counts) - min(counts) <= 1  # the bound does not bite: equal counts


def test_where_the_bound_does_not_bite_a_split_is_eight_equal_shards():
    assert MIN_SHARDS == 8
    assert shard_counts([100] * 40, 1 << 20) == [5] * 8
    assert shard_counts([100] * 10, 1 << 20) == [1, 1, 1, 2, 1, 1, 1, 2]
    assert shard_counts([100] * 3, 1 << 20) == [1, 1, 1] and shard_counts([], 1 << 20) == []
    # the bound: 1,000 bytes of images in shards of at most 250, equal counts
    assert shard_counts([10] * 100, 250, minimum=2) == [25] * 4
    # ceil(270 / 50) = 6 runs; the image larger than the bound is a shard of its own
    assert shard_counts([10, 10, 10, 10, 200, 10, 10, 10], 50, minimum=2) == [1, 1, 2, 1, 1, 2]
    # ceil(90 / 50) = 2 runs of 2 (20 and 70 bytes); the second, over the bound, cut again into 2
    assert shard_counts([10, 10, 60, 10], 50, minimum=1) == [2, 1, 1]


def test_the_order_is_the_documented_sha256_of_seed_and_member():
    member = "train/n01440764/n01440764_10026.JPEG"
    digest = hashlib.sha256(f"{SEED}:{member}".encode()).digest()
    assert order_key(member) == int.from_bytes(digest[:8], "big") and order_key(member, 1) != order_key(member)


class _Labels:
    def of(self, member, split, wnid):
        return None, {}


def _written(out, images: list[str], shard_size: int = 1 << 20) -> dict[str, list[str]]:
    """`images` (member paths) written as WebDataset shards: {shard name: its samples' members, in
    order}; each sample's image must be its own (the record read back from the spool)."""
    out.mkdir()
    shards = WebDatasetShards(Context(out, "s", 8, 0, _Labels(), shard_size))
    for member in images:
        shards.add_image(PlannedImage(member, member.split("/")[0], member.split("/")[1], None), member.encode() * 50, ORIGIN)
    got = {}
    for f in shards.close():
        name = f.path.split("/")[1]
        with tarfile.open(shards._tmp / name) as tar:
            data = [tar.extractfile(m).read() for m in tar]
        got[name] = [json.loads(meta)["member"] for meta in data[2::3]]
        assert data[0::3] == [m.encode() * 50 for m in got[name]]
    shards.abort()
    return got


def test_samples_come_out_in_the_seeded_order_shard_after_shard_whatever_left_out(tmp_path):
    """Images come in member order; each split's samples are written sorted by `order_key`, cut
    into shards in that order; an image left out (--skip-broken) leaves the others' order as it was."""
    members = [f"{split}/n{c}/n{c}_{i}.JPEG" for split in ("train", "val") for c in range(3) for i in range(6)]
    got = _written(tmp_path / "a", members)
    train = [n for name, ns in got.items() if name.startswith("train-") for n in ns]
    assert list(got) == [f"{s}-{i:05d}-of-00008.tar" for s in ("train", "val") for i in range(8)]
    expected = sorted((m for m in members if m.startswith("train/")), key=order_key)
    assert train == expected and expected != sorted(expected)
    without = _written(tmp_path / "b", [m for m in members if m != expected[3]])
    assert [n for name, ns in without.items() if name.startswith("train-") for n in ns] == \
        [m for m in expected if m != expected[3]]


def test_the_spool_is_gone_after_close_and_abort_removes_everything(tmp_path):
    shards = WebDatasetShards(Context(tmp_path, "s", 8, 0, _Labels()))
    shards.add_image(PlannedImage("train/n1/a.JPEG", "train", "n1", None), b"jpeg", ORIGIN)
    assert os.listdir(shards._tmp) == [".spool"]
    files = shards.close()
    assert sorted(os.listdir(shards._tmp)) == [f.path.split("/")[1] for f in files] == ["train-00000-of-00001.tar"]
    shards.abort()
    again = WebDatasetShards(Context(tmp_path, "s", 8, 0, _Labels()))
    again.add_image(PlannedImage("train/n1/a.JPEG", "train", "n1", None), b"jpeg", ORIGIN)
    again.abort()
    assert os.listdir(tmp_path) == []
