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

from .manifest import NOISE_PERCENTS, Manifest
from .plan import Plan

HEADER = ["path"] + [f"noisy_labels_{p}" for p in (0,) + NOISE_PERCENTS] + ["is_valid"]


def _h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def flip_count(n_train: int, percent: int) -> int:
    return math.floor(n_train * percent / 100 + 0.5)


def noisy_rows(plan: Plan, manifest: Manifest) -> list[list[str]]:
    seed = manifest.noisy_labels.seed
    labelled = [img for img in plan.images if img.split in ("train", "val")]
    train = [img.member for img in labelled if img.split == "train"]
    classes = sorted(manifest.wnids)
    flipped: dict[int, dict[str, str]] = {}
    for p in NOISE_PERCENTS:
        k = flip_count(len(train), p)
        chosen = sorted(train, key=lambda m: _h(f"{seed}\0noisy\0{p}\0{m}"))[:k]
        flips = {}
        for member in chosen:
            true = member.split("/")[1]
            others = [c for c in classes if c != true]
            if others:
                flips[member] = others[int(_h(f"{seed}\0label\0{p}\0{member}"), 16) % len(others)]
        flipped[p] = flips
    rows = []
    for img in labelled:
        labels = [img.wnid] + [flipped[p].get(img.member, img.wnid) for p in NOISE_PERCENTS]
        rows.append([img.member, *labels, "True" if img.split == "val" else "False"])
    return rows


def noisy_csv(plan: Plan, manifest: Manifest) -> bytes:
    lines = [",".join(HEADER)] + [",".join(r) for r in noisy_rows(plan, manifest)]
    return ("\n".join(lines) + "\n").encode()
