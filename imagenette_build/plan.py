"""The plan: which source image becomes which archive member, decided before any pixel is touched.

Member order is part of the output's bytes, so it is defined here once: root files first (in the
manifest's order), then images sorted by member path (`train/...` before `val/...`; within a split,
by class, then file name). Nothing about a plan depends on --jobs, the layout or the file system's
listing order.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .manifest import Manifest
from .sources import Source, SourceImage, SourceRef


@dataclass(frozen=True)
class PlannedImage:
    member: str  # path below the archive's top folder: "train/n01440764/n01440764_10026.JPEG"
    split: str
    wnid: str
    ref: SourceRef


@dataclass
class Plan:
    manifest: Manifest
    source: str  # description of the ImageNet copy
    images: list[PlannedImage]
    missing: list[str] = field(default_factory=list)  # members with no source image
    empty_classes: list[str] = field(default_factory=list)  # where nothing at all was found, and where

    def counts(self) -> dict[str, dict[str, int]]:
        """{split: {wnid: images}} over the images found, every manifest split and class present."""
        c = Counter((img.split, img.wnid) for img in self.images)
        return {s: {w: c[(s, w)] for w in self.manifest.wnids} for s in self.manifest.split.splits}

    def to_json(self) -> dict:
        return {
            "manifest": self.manifest.name,
            "source": self.source,
            "images": len(self.images),
            "counts": self.counts(),
            "missing": len(self.missing),
            "missing_first": self.missing[:10],
            "empty_classes": self.empty_classes,
        }


def random_split_key(seed: int, wnid: str, filename: str) -> str:
    """The documented `random` split order: per class, images sorted by this key."""
    return hashlib.sha256(f"{seed}\0{wnid}\0{filename}".encode()).hexdigest()


def random_val_count(n: int, fraction: float) -> int:
    return math.floor(n * fraction + 0.5)


def extra_split_key(seed: int, split: str, wnid: str, filename: str) -> str:
    """The documented order for [[split.extra]]: per class, train images sorted by this key."""
    return hashlib.sha256(f"{seed}\0{split}\0{wnid}\0{filename}".encode()).hexdigest()


def _apply_extra_splits(planned: list[PlannedImage], manifest: Manifest) -> list[PlannedImage]:
    """Move a seeded share of each chosen class's train images to each flat, unlabelled extra split."""
    seed = manifest.split.seed
    for extra in manifest.split.extra:
        chosen = set(extra.classes or manifest.wnids)
        by_class: dict[str, list[PlannedImage]] = {}
        for p in planned:
            if p.split == extra.source and p.wnid in chosen:
                by_class.setdefault(p.wnid, []).append(p)
        moved: dict[str, PlannedImage] = {}
        for wnid, imgs in by_class.items():
            ordered = sorted(imgs, key=lambda p: extra_split_key(seed, extra.name, wnid, p.member.rsplit("/", 1)[1]))
            for p in ordered[:random_val_count(len(ordered), extra.fraction)]:
                filename = p.member.rsplit("/", 1)[1]
                moved[p.member] = PlannedImage(f"{extra.name}/{filename}", extra.name, wnid, p.ref)
        planned = [moved.get(p.member, p) for p in planned]
    return planned


def make_plan(manifest: Manifest, source: Source, progress: Callable[[Iterable], Iterable] = iter) -> Plan:
    found: dict[str, list[SourceImage]] = {}
    empty: list[str] = []
    source.prepare(manifest.wnids, progress)  # one-pass layouts (compressed shards) read here
    for wnid in progress(manifest.wnids):
        imgs = list(source.images(wnid))
        found[wnid] = imgs
        if not imgs:
            empty.append(f"{wnid}: nothing in {source.looked_in(wnid)}")

    policy = manifest.split.policy
    planned: list[PlannedImage] = []
    missing: list[str] = []
    if policy == "files":
        index = {(img.wnid, img.filename): img for imgs in found.values() for img in imgs}
        for listed in manifest.listed_images():
            img = index.get((listed.wnid, listed.filename))
            if img is None:
                missing.append(listed.member)
            else:
                planned.append(PlannedImage(listed.member, listed.split, listed.wnid, img.ref))
    elif policy == "imagenet":
        for wnid, imgs in found.items():
            for img in imgs:
                planned.append(PlannedImage(f"{img.split}/{wnid}/{img.filename}", img.split, wnid, img.ref))
    else:  # random: pool ILSVRC train and val, then a seeded, stratified split per class
        seed, fraction = manifest.split.seed, manifest.split.val_fraction
        for wnid, imgs in found.items():
            ordered = sorted(imgs, key=lambda im: random_split_key(seed, wnid, im.filename))
            n_val = random_val_count(len(ordered), fraction)
            for i, img in enumerate(ordered):
                split = "val" if i < n_val else "train"
                planned.append(PlannedImage(f"{split}/{wnid}/{img.filename}", split, wnid, img.ref))

    if manifest.split.extra:
        planned = _apply_extra_splits(planned, manifest)
    planned.sort(key=lambda p: p.member)
    _check_unique(planned)
    return Plan(manifest, source.describe(), planned, missing, empty)


def _check_unique(planned: list[PlannedImage]) -> None:
    from .errors import DataError

    for a, b in zip(planned, planned[1:]):
        if a.member == b.member:
            raise DataError(f"two source images would become {a.member}: {a.ref} and {b.ref}")
