"""Duplicates (duplicates.py): the pHash keeps re-encoded and slightly resized or cropped copies
within NEAR_THRESHOLD bits and different images beyond it; the bucketed search finds exactly the
pairs a brute-force search finds; an exact and a near duplicate planted across train and val of a
sample are found, and a clean sample has none."""

from __future__ import annotations

import hashlib
import io
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from imagenette_build import duplicates
from imagenette_build.duplicates import NEAR_THRESHOLD, DuplicateFinder, fingerprint, near_pairs, phash, popcount
from imagenette_build.samplegen import synthetic_jpeg
from imagenette_build.transform import Recipe, make_jpegs

from ..conftest import REFERENCE
from ..faultkit import TEN_CLASSES

NAMES = [f"n01440764_{1000 + 37 * k}.JPEG" for k in range(60)] + [f"ILSVRC2012_val_{k:08d}.JPEG" for k in range(1, 61)]


def _decoded(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def _jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _copies(img: Image.Image) -> dict[str, Image.Image]:
    """Copies a near-duplicate finder must find: re-encoded, resized, both."""
    w, h = img.size
    return {
        "quality 50": _decoded(_jpeg(img, 50)),
        "quality 95": _decoded(_jpeg(img, 95)),
        "90 % size": _decoded(_jpeg(img.resize((w * 9 // 10, h * 9 // 10), Image.BICUBIC), 75)),
        "the 160 px member": _decoded(make_jpegs(_jpeg(img, 95), (160,), Recipe())[0]),
    }


def _crops(img: Image.Image) -> list[Image.Image]:
    """Slightly cropped copies: a 1 % crop, and one also at 95 % size and quality 60."""
    w, h = img.size
    crop = img.crop((w // 100, h // 100, w - w // 100, h - h // 100))
    return [_decoded(_jpeg(crop, 75)), _decoded(_jpeg(crop.resize((w * 95 // 100, h * 95 // 100)), 60))]


def _distance(a: int, b: int) -> int:
    return bin(a ^ b).count("1")


def _check_threshold(images: list[Image.Image]) -> None:
    """Every re-encoded or resized copy within the threshold, nearly every slightly cropped one (the
    pHash moves with a crop: 2 % crops are often 8 to 12 bits away), different images beyond it."""
    hashes = [fingerprint(img)[1] for img in images]
    crops = []
    for img, h in zip(images, hashes):
        for what, copy in _copies(img).items():
            assert _distance(h, fingerprint(copy)[1]) <= NEAR_THRESHOLD, what
        crops += [_distance(h, fingerprint(copy)[1]) for copy in _crops(img)]
    assert sum(d <= NEAR_THRESHOLD for d in crops) >= 0.95 * len(crops), sorted(crops)
    apart = min(_distance(a, b) for a, b in combinations(hashes, 2))
    assert apart > NEAR_THRESHOLD, apart


def test_the_threshold_on_synthetic_images():
    """Copies of the generator's images stay within the threshold; 120 different ones are beyond it."""
    _check_threshold([_decoded(synthetic_jpeg(name)) for name in NAMES])


@pytest.mark.skipif(not (REFERENCE / "imagenet-samples").is_dir(), reason="no reference photos here")
def test_the_threshold_on_real_photos():
    """The same on the 40 ImageNet photos of shared/reference (not in the repository)."""
    _check_threshold([Image.open(p).convert("RGB") for p in sorted((REFERENCE / "imagenet-samples").glob("*.JPEG"))])


def test_fingerprint_of_an_image_and_of_its_pixels_agree_and_the_pixel_hash_sees_one_value():
    img = _decoded(synthetic_jpeg(NAMES[0]))
    pixels = np.asarray(img)
    assert fingerprint(img) == fingerprint(pixels)
    changed = pixels.copy()
    changed[0, 0, 0] ^= 1
    assert fingerprint(changed)[0] != fingerprint(pixels)[0]
    assert fingerprint(changed)[1] == fingerprint(pixels)[1]  # one value moves no pHash bit
    gray = img.convert("L")
    assert fingerprint(gray) == fingerprint(np.asarray(gray)) == fingerprint(np.asarray(gray)[..., None])
    for mode in ("CMYK", "P", "RGBA", "LA"):  # (converted as every Pillow and pillow-simd can)
        assert isinstance(fingerprint(img.convert(mode))[1], int)


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.float32), np.zeros((4, 4, 2), np.uint8), np.zeros(4, np.uint8)])
def test_pixels_of_another_shape_or_type_are_refused(bad):
    with pytest.raises(ValueError, match="pixels must be uint8"):
        fingerprint(bad)


def test_the_phash_is_computed_in_integers():
    """Its bits do not depend on floating point: a flat image (every AC coefficient 0) has none set,
    where a float DCT's rounding noise would set some at random."""
    assert phash(np.full((50, 70), 128, np.uint8)) == 0
    ramp = np.tile(np.arange(64, dtype=np.uint8) * 4, (64, 1))
    assert phash(ramp) == phash(ramp.copy()) and bin(phash(ramp)).count("1") <= 32


def test_the_dct_table_is_the_same_everywhere():
    """The cosines are rounded to integers once: no scaled cosine lies near a rounding boundary, so
    a libm whose cos differs in the last bits rounds every one alike (and the pHash keeps its bits)."""
    k, x = np.meshgrid(np.arange(1, 9), np.arange(32), indexing="ij")
    scaled = np.cos(np.pi * k * (2 * x + 1) / 64) * (1 << 14)
    assert np.abs(np.abs(scaled - np.floor(scaled)) - 0.5).min() > 1e-6
    assert np.array_equal(duplicates._DCT, np.rint(scaled).astype(np.int64))


def _brute_force(codes: list[int], threshold: int) -> list[list[int]]:
    return [[i, j] for i, j in combinations(range(len(codes)), 2) if _distance(codes[i], codes[j]) <= threshold]


# Hashes in clusters (a few flipped bits from a few centres), so that many pairs are close.
_cluster = st.tuples(st.integers(0, 2**64 - 1), st.lists(st.lists(st.integers(0, 63), max_size=12), max_size=8))
_codes = st.lists(_cluster, max_size=10).map(
    lambda cs: [c ^ sum({1 << b for b in flips}) for c, members in cs for flips in members])


@settings(deadline=None)
@given(_codes, st.integers(0, 12), st.integers(3, 6))
def test_the_bucketed_search_finds_exactly_what_brute_force_finds(codes, threshold, bands):
    got = near_pairs(np.array(codes, dtype=np.uint64), threshold, bands)
    assert got.tolist() == _brute_force(codes, threshold)


def test_popcount_without_bitwise_count(monkeypatch):
    x = np.array([[0, 1], [2**64 - 1, 0x8000_0000_0000_0001]], dtype=np.uint64)
    want = [[0, 1], [64, 2]]
    assert popcount(x).tolist() == want
    monkeypatch.delattr(np, "bitwise_count", raising=False)
    assert popcount(x).tolist() == want


def _members(root: Path) -> list[tuple[str, bytes]]:
    """(member, source bytes) of a sample's images (not its decoys), in member order."""
    return sorted((p.relative_to(root).as_posix(), p.read_bytes()) for p in root.glob("*/*/*.JPEG")
                  if p.parent.name in TEN_CLASSES)


def _find(members: list[tuple[str, bytes]], size: int | None = 160) -> dict:
    """What the build does: each member's fingerprints (of its bytes as written, decoded), in order."""
    finder = DuplicateFinder(("train", "val"))
    for index, (member, data) in enumerate(members):
        written = data if size is None else make_jpegs(data, (size,), Recipe())[0]
        finder.add(index, member.split("/")[0], hashlib.sha256(data).hexdigest(), *fingerprint(_decoded(written)))
    return finder.result(lambda i: members[i][0])


@pytest.mark.parametrize("size", [160, None])
def test_planted_duplicates_across_train_and_val_are_found_and_a_clean_sample_has_none(sample, size):
    root, _ = sample
    members = _members(root)
    clean = _find(members, size)
    assert clean["images"] == len(members) == 50
    assert clean["exact"]["groups"] == clean["near"]["groups"] == 0 and clean["groups"] == []

    train = [m for m in members if m[0].startswith("train/")]
    (copied, copied_bytes), (resaved, resaved_bytes) = train[0], train[5]
    img = _decoded(resaved_bytes)
    w, h = img.size
    near_bytes = _jpeg(img.resize((w * 95 // 100, h * 95 // 100), Image.BICUBIC), 60)
    wnid = copied.split("/")[1]
    planted = members + [(f"val/{wnid}/ILSVRC2012_val_00049001.JPEG", copied_bytes),
                         (f"val/{resaved.split('/')[1]}/ILSVRC2012_val_00049002.JPEG", near_bytes)]
    planted.sort()
    found = _find(planted, size)
    assert found["exact"] == {"groups": 1, "members": 2, "groups_across_splits": 1, "members_across_splits": 2}
    assert found["near"] == {"groups": 1, "members": 2, "groups_across_splits": 1, "members_across_splits": 2}
    exact, near = found["groups"]
    assert exact["kind"] == "exact" and exact["same_bytes"] and exact["splits"] == ["train", "val"]
    assert exact["members"] == [copied, f"val/{wnid}/ILSVRC2012_val_00049001.JPEG"]
    assert near["kind"] == "near" and near["splits"] == ["train", "val"]
    assert near["members"] == [resaved, f"val/{resaved.split('/')[1]}/ILSVRC2012_val_00049002.JPEG"]
    assert near["max_distance"] <= NEAR_THRESHOLD
    assert _find(planted, size) == found  # deterministic


def test_same_pixels_in_other_bytes_within_a_split_and_the_bounds(monkeypatch):
    img = _decoded(synthetic_jpeg(NAMES[1]))
    png1, png2 = io.BytesIO(), io.BytesIO()
    img.save(png1, "PNG", compress_level=1)
    img.save(png2, "PNG", compress_level=9)
    members = [("train/a/1.png", png1.getvalue()), ("train/a/2.png", png2.getvalue())]
    members += [(f"val/b/{k}.jpg", synthetic_jpeg(NAMES[2])) for k in range(3)]  # one group of 3
    members += [(f"{s}/c/{k}.jpg", synthetic_jpeg(NAMES[3 + k])) for k, s in enumerate(("train", "val"))]  # none
    finder = DuplicateFinder(("train", "val"))
    for i, (member, data) in enumerate(members):
        finder.add(i, member.split("/")[0], hashlib.sha256(data).digest(), *fingerprint(_decoded(data)))
    result = finder.result(lambda i: members[i][0])
    assert result["exact"] == {"groups": 2, "members": 5, "groups_across_splits": 0, "members_across_splits": 0}
    assert [(g["members"], g["same_bytes"], g["splits"]) for g in result["groups"]] == [
        (["train/a/1.png", "train/a/2.png"], False, ["train"]),
        (["val/b/0.jpg", "val/b/1.jpg", "val/b/2.jpg"], True, ["val"])]
    monkeypatch.setattr(duplicates, "MAX_GROUPS", 1)
    monkeypatch.setattr(duplicates, "MAX_LISTED", 2)
    bounded = finder.result(lambda i: members[i][0])
    assert bounded["exact"] == result["exact"] and bounded["groups_not_listed"] == 1
    assert bounded["groups"] == [{**result["groups"][0], "members": ["train/a/1.png", "train/a/2.png"]}]


def test_groups_across_splits_come_first_and_a_split_not_named_is_added():
    finder = DuplicateFinder(("train", "val"))
    rows = [(0, "train", 1), (1, "train", 1), (2, "unsup", 2), (3, "val", 2)]
    for index, split, content in rows:  # (pHashes 64 bits apart: no near group)
        finder.add(index, split, bytes([content]) * 32, bytes([content]) * 16, 0 if content == 1 else 2**64 - 1)
    result = finder.result(str)
    assert [g["members"] for g in result["groups"]] == [["2", "3"], ["0", "1"]]
    assert result["groups"][0]["splits"] == ["val", "unsup"]


def test_bad_fingerprints_are_refused():
    finder = DuplicateFinder()
    with pytest.raises(ValueError):
        finder.add(0, "train", "ab", b"\0" * 16, 0)
    with pytest.raises(ValueError):
        finder.add(0, "train", "00" * 32, b"\0" * 15, 0)
    with pytest.raises(ValueError):
        finder.add(0, "train", "00" * 32, b"\0" * 16, 1 << 64)
    assert len(finder) == 0 and finder.result(str)["groups"] == []


def _brute_force_groups(codes: list[int], contents: list[int], threshold: int) -> list[list[int]]:
    """Near groups by definition: members chained by pHash distance or equal content, of two or
    more contents."""
    label = list(range(len(codes)))

    def root(i: int) -> int:
        while label[i] != i:
            i = label[i]
        return i
    for i, j in combinations(range(len(codes)), 2):
        if _distance(codes[i], codes[j]) <= NEAR_THRESHOLD or contents[i] == contents[j]:
            label[max(root(i), root(j))] = min(root(i), root(j))
    groups: dict[int, list[int]] = {}
    for i in range(len(codes)):
        groups.setdefault(root(i), []).append(i)
    return sorted(g for g in groups.values() if len({contents[i] for i in g}) > 1)


@settings(deadline=None, max_examples=60)
@given(_codes, st.data())
def test_near_groups_are_those_of_every_pair_whatever_the_repeated_codes(codes, data):
    """Members with equal pHashes are searched once (the distinct codes): the groups are still
    those of comparing every pair."""
    codes = codes + data.draw(st.lists(st.sampled_from(codes), max_size=30)) if codes else []
    contents = data.draw(st.lists(st.integers(0, 5), min_size=len(codes), max_size=len(codes)))
    finder = DuplicateFinder(("train",))
    for i, (code, content) in enumerate(zip(codes, contents)):
        finder.add(i, "train", bytes([content]) * 32, bytes([content]) * 16, code)
    with pytest.MonkeyPatch.context() as mp:  # every group listed whole
        mp.setattr(duplicates, "MAX_LISTED", 10 ** 6)
        mp.setattr(duplicates, "MAX_GROUPS", 10 ** 6)
        result = finder.result(str)
    got = sorted(sorted(map(int, g["members"])) for g in result["groups"] if g["kind"] == "near")
    assert got == _brute_force_groups(codes, contents, NEAR_THRESHOLD)


def test_copies_of_one_image_are_searched_once(monkeypatch):
    """20,000 copies of one image (a dataset of blank frames, say): the search sees one pHash, so
    its pairs stay few instead of 2 * 10^8."""
    searched = []
    real = duplicates.near_pairs
    monkeypatch.setattr(duplicates, "near_pairs", lambda codes, *a: searched.append(len(codes)) or real(codes, *a))
    finder = DuplicateFinder(("train", "val"))
    for i in range(20_000):
        finder.add(i, ("train", "val")[i % 2], b"\1" * 32, b"\2" * 16, 12345)
    finder.add(20_000, "val", b"\3" * 32, b"\3" * 16, 12345 ^ 0b111)  # near: 3 bits away, other pixels
    result = finder.result(str)
    assert searched == [2]
    assert result["exact"]["members"] == 20_000 and result["exact"]["groups"] == 1
    assert result["near"] == {"groups": 1, "members": 20_001, "groups_across_splits": 1, "members_across_splits": 20_001}
