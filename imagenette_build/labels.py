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
from collections.abc import Iterator

from .manifest import DatasetClass, Manifest
from .noisy import HEADER as NOISY_HEADER
from .noisy import NoisyCsv
from .plan import Plan

NOISY_COLUMNS = NOISY_HEADER[1:-1]  # noisy_labels_0, _1, _5, _25, _50


def classes(manifest: Manifest) -> list[DatasetClass]:
    """The dataset's classes in label order."""
    return sorted(manifest.classes, key=lambda c: c.index)


class Labels:
    """Per member: its class (None for an unlabelled split such as Imagewang's `unsup/`) and its
    noisy labels as class indices (empty when the dataset has none): from the published list for
    `files` manifests, from the generated noisy-labels CSV otherwise.

    A published list's rows are held (at most the list's images). Generated rows are made as they
    are asked for: the outputs ask in member order, the rows' order, so one row is held at a time (a
    dict of every member's labels held ~200 bytes an image, 270 MB for all of ImageNet-1k)."""

    def __init__(self, plan: Plan, manifest: Manifest):
        self.classes = classes(manifest)
        self._index = {c.wnid: c.index for c in self.classes}
        self._unlabelled = {e.name for e in manifest.split.extra}
        self._noisy: dict[str, tuple[int, ...]] = {}
        self._generated: NoisyCsv | None = None
        self._rows: Iterator[list[str]] | None = None
        self._row: list[str] | None = None
        self._asked = ""  # the member last asked for
        if manifest.split.policy == "files" and manifest.split.list_file:
            self._read_rows(manifest.read_root_file(manifest.split.list_file).decode("utf-8-sig"))
        elif manifest.noisy_labels_file and any(s in ("train", "val") for s, _ in plan.images.counts()):
            self._generated = NoisyCsv(plan, manifest)
        self.columns = list(NOISY_COLUMNS) if self._noisy or self._generated else []

    def _read_rows(self, text: str) -> None:
        rows = csv.DictReader(io.StringIO(text, newline=""))
        if not set(NOISY_COLUMNS) <= set(rows.fieldnames or ()):
            return
        for row in rows:
            labels = self._indices([row[c] for c in NOISY_COLUMNS])
            if labels is not None:
                self._noisy[row["path"]] = labels

    def _indices(self, wnids: list[str]) -> tuple[int, ...] | None:
        return tuple(self._index[w] for w in wnids) if all(w in self._index for w in wnids) else None

    def _generated_row(self, member: str) -> tuple[int, ...] | None:
        """The generated labels of `member`: the rows after the last one asked for are read up to
        it; a member before the last one asked for reads the rows again from the first."""
        if self._rows is None or member < self._asked:
            self._rows = self._generated.rows()
            self._row = next(self._rows, None)
        self._asked = member
        while self._row is not None and self._row[0] < member:
            self._row = next(self._rows, None)
        if self._row is None or self._row[0] != member:
            return None
        return self._indices(self._row[1:1 + len(NOISY_COLUMNS)])

    def of(self, member: str, split: str, wnid: str) -> tuple[DatasetClass | None, dict[str, int]]:
        """(the member's class or None, {noisy column: class index})."""
        labelled = split not in self._unlabelled and wnid in self._index
        cls = self.classes[self._index[wnid]] if labelled else None
        noisy = self._generated_row(member) if self._generated is not None else self._noisy.get(member)
        return cls, (dict(zip(self.columns, noisy)) if noisy is not None and cls is not None else {})
