"""Class indices, names and noisy labels beside the data, for the loaders people train with.

A class's index is its position among the manifest's WNIDs sorted: the order of torchvision's
`ImageFolder` over `train/` (folders sorted by name), of Hugging Face's `imagefolder` and of fastai's
vocabulary, so that every loader and the report agree. The build report lists the classes
(`classes`), and the Parquet and WebDataset outputs carry the index, the WNID, the name and the
noisy labels of every image.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from .manifest import Manifest
from .noisy import HEADER as NOISY_HEADER
from .noisy import NoisyCsv
from .plan import Plan

NOISY_COLUMNS = NOISY_HEADER[1:-1]  # noisy_labels_0, _1, _5, _25, _50


@dataclass(frozen=True)
class ClassInfo:
    index: int
    wnid: str
    name: str

    def to_json(self) -> dict:
        return {"index": self.index, "wnid": self.wnid, "name": self.name}


def classes(manifest: Manifest) -> list[ClassInfo]:
    names = {c.wnid: c.name for c in manifest.classes}
    return [ClassInfo(i, w, names[w]) for i, w in enumerate(sorted(names))]


class Labels:
    """Per member: its class (None for an unlabelled split such as Imagewang's `unsup/`) and its
    noisy labels as class indices (empty when the dataset has none): from the published list for
    `files` manifests, from the generated noisy-labels CSV otherwise."""

    def __init__(self, plan: Plan, manifest: Manifest):
        self.classes = classes(manifest)
        self._index = {c.wnid: c.index for c in self.classes}
        self._unlabelled = {e.name for e in manifest.split.extra}
        self._noisy: dict[str, tuple[int, ...]] = {}
        if manifest.split.policy == "files" and manifest.split.list_file:
            self._read_rows(manifest.read_root_file(manifest.split.list_file).decode("utf-8-sig"))
        elif manifest.noisy_labels_file:
            for row in NoisyCsv(plan, manifest).rows():
                self._add(row[0], row[1:1 + len(NOISY_COLUMNS)])
        self.columns = list(NOISY_COLUMNS) if self._noisy else []

    def _read_rows(self, text: str) -> None:
        rows = csv.DictReader(io.StringIO(text, newline=""))
        if not set(NOISY_COLUMNS) <= set(rows.fieldnames or ()):
            return
        for row in rows:
            self._add(row["path"], [row[c] for c in NOISY_COLUMNS])

    def _add(self, member: str, wnids: list[str]) -> None:
        if all(w in self._index for w in wnids):
            self._noisy[member] = tuple(self._index[w] for w in wnids)

    def of(self, member: str, split: str, wnid: str) -> tuple[ClassInfo | None, dict[str, int]]:
        """(the member's class or None, {noisy column: class index})."""
        labelled = split not in self._unlabelled and wnid in self._index
        cls = self.classes[self._index[wnid]] if labelled else None
        noisy = self._noisy.get(member)
        return cls, (dict(zip(self.columns, noisy)) if noisy is not None and cls is not None else {})
