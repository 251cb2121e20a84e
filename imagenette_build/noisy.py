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

import csv
import hashlib
import io
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


def _flips(plan: Plan, manifest: Manifest, classes: list[str]) -> np.ndarray:
    """[percent, train image] -> index in `classes` of the flipped label, or -1 (not flipped).

    Two passes over the train members' names a percentage, never a list of them: the sort keys
    are one array of digests (by digest bytes: the same order as by their hex)."""
    seed = manifest.noisy_labels.seed
    where = {c: i for i, c in enumerate(classes)}
    n = sum(k for (split, _), k in plan.images.counts().items() if split == "train")
    flipped = np.full((len(NOISE_PERCENTS), n), -1, dtype=np.int32 if len(classes) > 32767 else np.int16)
    for j, p in enumerate(NOISE_PERCENTS):
        digests = bytearray()
        for m in plan.images.members("train"):
            digests += hashlib.sha256(f"{seed}\0noisy\0{p}\0{m}".encode()).digest()
        chosen = np.zeros(n, dtype=bool)
        chosen[np.argsort(np.frombuffer(digests, dtype="S32"), kind="stable")[:flip_count(n, p)]] = True
        del digests
        for i, member in enumerate(plan.images.members("train")):
            if not chosen[i]:
                continue
            true = where.get(member.split("/")[1])
            others = len(classes) - (true is not None)  # the other classes, in sorted WNID order
            if others:
                k = int(_h(f"{seed}\0label\0{p}\0{member}"), 16) % others
                flipped[j, i] = k + (true is not None and k >= true)
    return flipped


class NoisyCsv:
    """The CSV of one plan, made row by row each time it is written, so that a build holds 8 bytes a
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
        """The file's bytes, header first, in pieces of about CHUNK bytes. Written by the csv module:
        a file name with a comma or a quote is quoted (one row, as any CSV reader reads it back);
        the names of ImageNet's images need none, so their bytes are those of a plain join. (The
        planner refuses names with line breaks or other control characters, and names that are not
        UTF-8: plan.py.)"""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(HEADER)
        for row in self.rows():
            writer.writerow(row)
            if out.tell() >= self.CHUNK:
                yield out.getvalue().encode()
                out.seek(0)
                out.truncate()
        if out.tell():
            yield out.getvalue().encode()


def noisy_csv(plan: Plan, manifest: Manifest) -> bytes:
    """The whole file at once (tests, small plans)."""
    return b"".join(NoisyCsv(plan, manifest).chunks())
