"""Noisy labels for new datasets, in the published `noisy_imagenette.csv` format.

For imagenette2 and imagewoof2 the published CSVs ship verbatim and are never regenerated. For a
manifest without a published list, the build writes `noisy_<name>.csv` at the archive root:

    path,noisy_labels_0,noisy_labels_1,noisy_labels_5,noisy_labels_25,noisy_labels_50,is_valid

one row per labelled image (train and val; unlabelled extra splits have no row), in member order.
At p % (1, 5, 25, 50), exactly round(n_train * p / 100) train images are flipped (half up): train
images sorted by sha256("<seed>\\0noisy\\0<p>\\0<path>") and the first k take a different class,
the one at position int(sha256("<seed>\\0label\\0<p>\\0<path>"), 16) mod (C - 1) among the
manifest's other classes in sorted WNID order. Val is never flipped. Only sha256 and integer
arithmetic: the same on every machine and Python version.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator

import numpy as np

from .manifest import NOISE_PERCENTS, Manifest
from .plan import Plan

HEADER = ["path"] + [f"noisy_labels_{p}" for p in (0,) + NOISE_PERCENTS] + ["is_valid"]


def _h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def flip_count(n_train: int, percent: int) -> int:
    return math.floor(n_train * percent / 100 + 0.5)


def _order(seed: int, percent: int, members: list[str]) -> np.ndarray:
    """Indices of `members` sorted by the documented key (by digest bytes: the same order as by
    their hex), as one array rather than a list of keys."""
    digests = bytearray()
    for m in members:
        digests += hashlib.sha256(f"{seed}\0noisy\0{percent}\0{m}".encode()).digest()
    return np.argsort(np.frombuffer(digests, dtype="S32"), kind="stable")


def _flips(plan: Plan, manifest: Manifest, classes: list[str]) -> np.ndarray:
    """[percent, train image] -> index in `classes` of the flipped label, or -1 (not flipped)."""
    seed = manifest.noisy_labels.seed
    train = [img.member for img in plan.images if img.split == "train"]
    flipped = np.full((len(NOISE_PERCENTS), len(train)), -1, dtype=np.int32)
    for j, p in enumerate(NOISE_PERCENTS):
        for i in _order(seed, p, train)[:flip_count(len(train), p)].tolist():
            member = train[i]
            true = member.split("/")[1]
            others = [c for c in classes if c != true]
            if others:
                pick = others[int(_h(f"{seed}\0label\0{p}\0{member}"), 16) % len(others)]
                flipped[j, i] = classes.index(pick)
    return flipped


class NoisyCsv:
    """The CSV of one plan, made row by row each time it is written, so that a build holds 16 bytes a
    train image (the flips), not the file (~90 bytes an image: 115 MB for all of ImageNet-1k).
    `size` is known up front, as a tar header needs it."""

    CHUNK = 1 << 20

    def __init__(self, plan: Plan, manifest: Manifest):
        self._plan = plan
        self._classes = sorted(manifest.wnids)
        self._flipped = _flips(plan, manifest, self._classes)
        self.size = sum(map(len, self.chunks()))

    def rows(self) -> Iterator[list[str]]:
        """One row per labelled image (train and val), in member order."""
        classes, flipped = self._classes, self._flipped
        t = 0
        for img in self._plan.images:
            if img.split == "val":
                yield [img.member] + [img.wnid] * (len(NOISE_PERCENTS) + 1) + ["True"]
            elif img.split == "train":
                labels = [img.wnid] + [classes[k] if k >= 0 else img.wnid for k in flipped[:, t].tolist()]
                yield [img.member, *labels, "False"]
                t += 1

    def chunks(self) -> Iterator[bytes]:
        """The file's bytes, header first, in pieces of about CHUNK bytes."""
        out = bytearray((",".join(HEADER) + "\n").encode())
        for row in self.rows():
            out += (",".join(row) + "\n").encode()
            if len(out) >= self.CHUNK:
                yield bytes(out)
                out.clear()
        if out:
            yield bytes(out)


def noisy_csv(plan: Plan, manifest: Manifest) -> bytes:
    """The whole file at once (tests, small plans)."""
    return b"".join(NoisyCsv(plan, manifest).chunks())
