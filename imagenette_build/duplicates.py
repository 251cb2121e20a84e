"""Duplicates within and across a dataset's splits, found while it is built.

ImageNet holds exact and near duplicates, and a subset inherits them, across its own train and val
too. Two parts, shaped for the build:

- a fingerprint, in the worker, per member: a hash of its decoded pixels and a 64-bit perceptual
  hash (pHash). For a resized member the pixel hash is the sha256 of its JPEG bytes, which stand for
  its pixels (`member_fingerprint`), and the pHash is of the resized image (`image_phash`); for a
  full-size member, both are of a reduced decode (`fingerprint_file`); `fingerprint(img)` computes
  both from pixels. With the source bytes' sha256, that is all the parent needs.
- `DuplicateFinder`, in the parent: fed each member's fingerprints in member order (~45 bytes a
  member in numpy arrays, ~58 MB for ImageNet-1k's 1.28 M images), `result()` is a plain,
  deterministic dict for the report.

Exact duplicates share their decoded pixels (a group whose files are also byte-identical says so:
`same_bytes`). Near duplicates are members whose pHashes differ in at most `threshold` bits
(NEAR_THRESHOLD, 6 of 64: re-encoded or resized copies of a photo stay within 4, 1 % crops mostly
within 6, different photos are 20 or more apart; of the synthetic images of imagenette2's and
imagewoof2's lists, one pair in 26,348 images is within 6 (docs/datasets.md);
tests/unit/test_duplicates.py measures these), chained into groups; a near group holds at least
two different pixel contents.

The pHash (as pHash.org's): the image resized to 32x32 with the box filter by `transform.resize`
(the same arithmetic on every Pillow), as 8-bit luma (integer ITU-R 601 weights), its 2-D DCT-II,
the 8x8 coefficients after the first row and column (the DC and the coarsest), each bit set when
the coefficient is above their median. The DCT is computed in integers (cosines scaled by 2^14),
so the bits are the same on every machine, BLAS and numpy.

The search is exact, not sampled: multi-index hashing (Norouzi et al., 2012). The 64 bits are cut
into BANDS substrings; two hashes within `threshold` bits agree within threshold // BANDS bits on
at least one substring (pigeonhole), so each hash is looked up, per substring, under every key
that close to its own (a table says where each key's hashes start in the sorted order), and each
candidate is then checked on all 64 bits. Plain banding (candidates share a substring exactly) would miss pairs more than
BANDS - 1 bits apart.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from itertools import combinations

import numpy as np
from PIL import Image

from .transform import open_image, resize

NEAR_THRESHOLD = 6  # bits of 64
BANDS = 3  # substrings of 22, 21 and 21 bits: on average fewer than one hash per key at 1.28 M
MAX_GROUPS = 200  # groups listed in the result (all are counted)
MAX_LISTED = 20  # members listed per group (all are counted)
PIXEL_HASH_BYTES = 16
_CHUNK = 1 << 20  # candidate pairs checked at a time: bounds the search's memory

_N = 32
_K = np.arange(1, 9)[:, None]  # the DCT rows kept (1..8)
_DCT = np.rint(np.cos(np.pi * _K * (2 * np.arange(_N)[None, :] + 1) / (2 * _N)) * (1 << 14)).astype(np.int64)


def _pixels(img: Image.Image | np.ndarray) -> np.ndarray:
    """The image as uint8 (H, W) luma or (H, W, 3) RGB."""
    if isinstance(img, Image.Image):
        if img.mode not in ("L", "RGB"):
            img = img.convert("RGBA" if "A" in img.mode or img.mode == "P" else "RGB").convert("RGB")
        return np.asarray(img)
    arr = np.asarray(img)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3)):
        raise ValueError(f"pixels must be uint8 (H, W) or (H, W, 1 or 3), not {arr.dtype} {arr.shape}")
    return arr[..., 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr


def pixel_hash(pixels: np.ndarray) -> bytes:
    """A digest of the pixel array: its shape and its bytes (mode-independent: an RGB image and
    the same values as a numpy array hash alike)."""
    # sha256 (cut to PIXEL_HASH_BYTES): most CPUs compute it with their SHA instructions, blake2b in
    # software, and this hashes every pixel of every member
    return _hash_of(pixels.shape, memoryview(np.ascontiguousarray(pixels)).cast("B"))  # (no copy of the pixels)


def _hash_of(shape: tuple[int, ...], data) -> bytes:
    h = hashlib.sha256(("x".join(map(str, shape)) + "\0").encode())
    h.update(data)
    return h.digest()[:PIXEL_HASH_BYTES]


def phash(pixels: np.ndarray) -> int:
    """The 64-bit pHash of uint8 (H, W) or (H, W, 3) pixels (module docstring)."""
    return _phash_of(Image.fromarray(np.ascontiguousarray(pixels), "RGB" if pixels.ndim == 3 else "L"))


def _phash_of(img: Image.Image) -> int:
    """`phash` of an "L" or "RGB" image."""
    small = np.asarray(resize(img, (_N, _N), "box"), dtype=np.int64)
    if img.mode == "RGB":  # luma of the 32x32 (cheaper than of the whole image), in integers
        small = (small[..., 0] * 299 + small[..., 1] * 587 + small[..., 2] * 114 + 500) // 1000
    coeffs = (_DCT @ small @ _DCT.T).ravel()  # exact: |values| < 2^14 * 32 * 255 * 2^14 * 32 < 2^63
    ordered = np.sort(coeffs)
    twice_median = int(ordered[31]) + int(ordered[32])
    bits = (2 * coeffs > twice_median).astype(np.uint8)
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def image_phash(img: Image.Image) -> int:
    """`phash` of a PIL image of any mode (an "L" or "RGB" one resized as it is, without a copy)."""
    return _phash_of(img) if img.mode in ("L", "RGB") else phash(_pixels(img))


def fingerprint(img: Image.Image | np.ndarray) -> tuple[bytes, int]:
    """(pixel hash, pHash) of a decoded image: a PIL image (any mode) or uint8 pixels."""
    pixels = _pixels(img)
    return pixel_hash(pixels), phash(pixels)


def member_fingerprint(jpeg_sha256: bytes, code: int) -> tuple[bytes, int]:
    """The fingerprint of a resized member, from the sha256 of its JPEG bytes and the pHash of its
    pixels (`image_phash`). Its bytes stand for its pixels: every resized member of a build is
    encoded by one encoder with one quality and no metadata, so equal pixels give equal bytes, and
    equal bytes decode to equal pixels. That sha256 is computed for the member's provenance anyway,
    and the pixels need not be hashed again."""
    return jpeg_sha256[:PIXEL_HASH_BYTES], code


SMALL_SIDE = 64  # a full-size image is fingerprinted at about this size (JPEG: DCT-scaled decode)


def fingerprint_file(data: bytes) -> tuple[bytes, int]:
    """`fingerprint` of a full-size member, which the build does not otherwise decode: a JPEG is
    decoded at the smallest DCT scale (1/2 to 1/8) that keeps both sides at least SMALL_SIDE px,
    several times cheaper than a full decode; the same file gives the same pixels, so exact copies
    still share the pixel hash, and pHash works at 32x32 anyway."""
    img = open_image(data)
    img.draft(None, (SMALL_SIDE, SMALL_SIDE))
    return fingerprint(img)


def popcount(x: np.ndarray) -> np.ndarray:
    """Set bits of each uint64."""
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(x).astype(np.int64)
    x = np.ascontiguousarray(x, dtype="<u8")
    table = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)
    return table[x.view(np.uint8).reshape(x.shape + (8,))].sum(axis=-1)


def _band_bits(bands: int) -> list[tuple[int, int]]:
    """(shift, width) of each substring: widths as equal as 64 bits allow, the wider first."""
    widths = [64 // bands + (i < 64 % bands) for i in range(bands)]
    return [(sum(widths[i + 1:]), w) for i, w in enumerate(widths)]


def _flips(width: int, radius: int) -> np.ndarray:
    """Every `width`-bit mask with at most `radius` bits set."""
    masks = [0]
    for r in range(1, radius + 1):
        masks += [sum(1 << b for b in bits) for bits in combinations(range(width), r)]
    return np.array(masks, dtype=np.uint64)


def near_pairs(codes: np.ndarray, threshold: int = NEAR_THRESHOLD, bands: int = BANDS) -> np.ndarray:
    """Every pair (i, j), i < j, of `codes` (uint64) at most `threshold` bits apart, as an (n, 2)
    int64 array sorted by i then j: multi-index hashing (module docstring). `bands` >= 3 (a
    substring of 22 bits or less), or the lookups are too many."""
    if bands < 3:
        raise ValueError("bands: 3 or more")
    codes = np.asarray(codes, dtype=np.uint64)
    n = len(codes)
    if n >= 1 << 31:
        raise ValueError("at most 2^31 - 1 hashes")
    found = [np.empty(0, np.int64)]
    for shift, width in _band_bits(bands):
        keys = ((codes >> np.uint64(shift)) & np.uint64((1 << width) - 1)).astype(np.int32)
        order = np.argsort(keys, kind="stable").astype(np.int32)
        # where each key's run starts in `order`: a table of 2^width + 1 (16 MB at 22 bits), so that
        # a lookup is a gather, not a binary search (several times slower)
        starts = np.searchsorted(keys[order], np.arange((1 << width) + 1, dtype=np.int32)).astype(np.int32)
        for mask in _flips(width, threshold // bands).astype(np.int32):
            queries = keys ^ mask
            left = starts[queries]
            counts = starts[queries + 1] - left
            hit = np.flatnonzero(counts)
            found += _checked(codes, order, hit, left[hit], counts[hit], threshold, n)
    pairs = np.unique(np.concatenate(found))
    return np.stack([pairs // max(n, 1), pairs % max(n, 1)], axis=1)


def _checked(codes, order, hit, left, counts, threshold, n) -> list[np.ndarray]:
    """The candidates (each hit[k] with counts[k] hashes from order[left[k]:]) within `threshold`,
    as i * n + j with i < j; at most _CHUNK candidates in memory at once."""
    out = []
    ends = np.cumsum(counts, dtype=np.int64)
    start = 0
    while start < len(hit):
        base = ends[start - 1] if start else 0
        stop = max(int(np.searchsorted(ends, base + _CHUNK, "right")), start + 1)
        c = counts[start:stop]
        i = np.repeat(hit[start:stop], c)
        offsets = np.arange(len(i), dtype=np.int64) - np.repeat(ends[start:stop] - base - c, c)
        j = order[np.repeat(left[start:stop], c) + offsets]
        keep = i < j
        i, j = i[keep].astype(np.int64), j[keep].astype(np.int64)
        close = popcount(codes[i] ^ codes[j]) <= threshold
        out.append(i[close] * n + j[close])
        start = stop
    return out


def _components(n: int, pairs: np.ndarray) -> np.ndarray:
    """The connected component of each of n items (its smallest item), joined by `pairs`."""
    label = np.arange(n, dtype=np.int64)
    if len(pairs) == 0:
        return label
    a, b = pairs[:, 0], pairs[:, 1]
    while True:  # min-label propagation with pointer jumping: few rounds for small groups
        low = np.minimum(label[a], label[b])
        before = label.copy()
        np.minimum.at(label, a, low)
        np.minimum.at(label, b, low)
        label = label[label]
        if np.array_equal(label, before):
            return label


class DuplicateFinder:
    """Collects each member's fingerprints (in member order) and finds the duplicates once all are in.

    `splits`: the dataset's splits, in the manifest's order (a split not named is added)."""

    def __init__(self, splits: tuple[str, ...] | list[str] = (), threshold: int = NEAR_THRESHOLD):
        self.threshold = threshold
        self._splits = list(splits)
        self._index = bytearray()  # <i8 member index
        self._split = bytearray()  # u1 split number
        self._source = bytearray()  # the first 16 bytes of the source's sha256
        self._pixels = bytearray()  # PIXEL_HASH_BYTES each
        self._phash = bytearray()  # <u8
        self.not_compared = 0  # members with no fingerprint (counted by the caller), in the result when any

    def add(self, index: int, split: str, source_sha256: str | bytes, pixel_hash: bytes, phash: int) -> None:
        """One member: its index in the plan, split, the sha256 of its source bytes (hex or raw),
        and `fingerprint`'s pixel hash and pHash."""
        if split not in self._splits:
            self._splits.append(split)
        raw = bytes.fromhex(source_sha256) if isinstance(source_sha256, str) else source_sha256
        if len(raw) < 16 or len(pixel_hash) != PIXEL_HASH_BYTES or not 0 <= phash < 1 << 64:
            raise ValueError("a source sha256, a pixel hash of fingerprint() and a 64-bit pHash are needed")
        self._index += int(index).to_bytes(8, "little", signed=True)
        self._split.append(self._splits.index(split))
        self._source += raw[:16]
        self._pixels += pixel_hash
        self._phash += int(phash).to_bytes(8, "little")

    def __len__(self) -> int:
        return len(self._split)

    def nbytes(self) -> int:
        return sum(len(b) for b in (self._index, self._split, self._source, self._pixels, self._phash))

    def result(self, member: Callable[[int], str]) -> dict:
        """The report's `duplicates`: counts and groups, `member(index)` naming each member listed."""
        n = len(self)
        index = np.frombuffer(self._index, "<i8")  # views: nothing is added once the result is asked
        split = np.frombuffer(self._split, np.uint8)
        content = _ids(np.frombuffer(self._pixels, f"V{PIXEL_HASH_BYTES}"))
        source = _ids(np.frombuffer(self._source, "V16"))
        codes = np.frombuffer(self._phash, "<u8")
        exact = _components(n, _same(content))
        # Near: chained by pHash, with exact copies joined too; only groups of two contents or more.
        # Equal pHashes are 0 bits apart: those members are joined to the first of their code, and
        # only the distinct codes are searched, so k copies of one image make k links, not k^2 / 2
        # pairs (a dataset of many copies would otherwise fill the memory with pairs).
        distinct, first, of_code = np.unique(codes, return_index=True, return_inverse=True)
        same_code = np.stack([np.arange(n), first[of_code.reshape(-1)]], axis=1)
        near = _components(n, np.concatenate([first[near_pairs(distinct, self.threshold)], same_code,
                                              _same(content)]))
        groups = []
        for kind, label in (("exact", exact), ("near", near)):
            for members in _groups(label):
                if kind == "near" and len(np.unique(content[members])) < 2:
                    continue
                entry = {"kind": kind, "splits": sorted({self._splits[s] for s in split[members].tolist()},
                                                        key=self._splits.index), "size": len(members)}
                if kind == "exact":
                    entry["same_bytes"] = bool(len(np.unique(source[members])) == 1)
                else:
                    entry["max_distance"] = _max_distance(codes[members])
                entry["members"] = [member(int(i)) for i in index[members[:MAX_LISTED]]]
                groups.append((len(entry["splits"]) == 1, int(index[members[0]]), entry))
        groups.sort(key=lambda g: (g[0], g[2]["kind"] != "exact", g[1]))
        return {
            "images": n,
            "near_threshold": self.threshold,
            "exact": _counts([g for _, _, g in groups if g["kind"] == "exact"]),
            "near": _counts([g for _, _, g in groups if g["kind"] == "near"]),
            "groups": [g for _, _, g in groups[:MAX_GROUPS]],
            "groups_not_listed": max(0, len(groups) - MAX_GROUPS),
            **({"not_compared": self.not_compared} if self.not_compared else {}),
        }


def _ids(values: np.ndarray) -> np.ndarray:
    """A small integer per distinct value (equal values, equal ids)."""
    return np.unique(values, return_inverse=True)[1].reshape(-1).astype(np.int64)


def _same(ids: np.ndarray) -> np.ndarray:
    """Pairs (i, j) that share an id: each item with the next of its id, enough to join a group."""
    order = np.argsort(ids, kind="stable")
    same = ids[order[1:]] == ids[order[:-1]]
    return np.stack([order[:-1][same], order[1:][same]], axis=1).astype(np.int64)


def _groups(label: np.ndarray) -> list[np.ndarray]:
    """The positions of each component of two or more, each in member order."""
    order = np.argsort(label, kind="stable")
    cuts = np.flatnonzero(np.diff(label[order])) + 1
    return [g for g in np.split(order, cuts) if len(g) > 1]


def _max_distance(codes: np.ndarray) -> int:
    """The largest pHash distance within a group (of its first MAX_LISTED members)."""
    c = codes[:MAX_LISTED]
    return int(popcount(c[:, None] ^ c[None, :]).max())


def _counts(groups: list[dict]) -> dict:
    across = [g for g in groups if len(g["splits"]) > 1]
    return {"groups": len(groups), "members": sum(g["size"] for g in groups),
            "groups_across_splits": len(across), "members_across_splits": sum(g["size"] for g in across)}
