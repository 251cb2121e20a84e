"""The 1000 ILSVRC-2012 classes: one table, shipped with the manifests (manifests/ilsvrc2012_classes.tsv).

Two numberings exist and are easy to confuse: `index` is the position in sorted-WNID order
(Keras, torchvision, Hugging Face labels); `devkit_id` is the 1-based ILSVRC2012_ID of the
devkit's meta.mat and ILSVRC2012_validation_ground_truth.txt, which is NOT sorted order
(devkit ID 1 is n02119789 kit fox; tench n01440764 is 449).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from .shipped import read_shipped

WNID_RE = re.compile(r"^n\d{8}$")


@dataclass(frozen=True)
class ImageNetClass:
    index: int  # sorted-WNID order, 0..999
    wnid: str
    devkit_id: int  # 1..1000, devkit order
    short_name: str
    names: tuple[str, ...]  # synonyms, first is the usual name


@lru_cache(maxsize=None)
def all_classes() -> tuple[ImageNetClass, ...]:
    text = read_shipped("ilsvrc2012_classes.tsv")
    rows = []
    for line in text.splitlines():
        if not line or line.startswith("#") or line.startswith("index\t"):
            continue
        index, wnid, devkit_id, short, names = line.split("\t")
        rows.append(ImageNetClass(int(index), wnid, int(devkit_id), short,
                                  tuple(n.strip() for n in names.split(","))))
    return tuple(rows)


@lru_cache(maxsize=None)
def by_wnid() -> dict[str, ImageNetClass]:
    return {c.wnid: c for c in all_classes()}


@lru_cache(maxsize=None)
def by_devkit_id() -> dict[int, ImageNetClass]:
    return {c.devkit_id: c for c in all_classes()}


def is_wnid(text: str) -> bool:
    return bool(WNID_RE.match(text))
