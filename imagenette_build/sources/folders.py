"""Extracted ImageNet folders: `train/<wnid>/*.JPEG` and a val folder that is either per class
(`val/<wnid>/`, after valprep.sh) or flat (`val/ILSVRC2012_val_*.JPEG`, labelled by the devkit's
ground truth, extracted or still in ILSVRC2012_devkit_t12.tar.gz, or by Kaggle's
LOC_val_solution.csv). The Kaggle download is the same tree under
`ILSVRC/Data/CLS-LOC/`, with LOC_val_solution.csv at its top.

Only the asked-for classes are listed: a train class folder is one `scandir`, flat val images are
found through the label file, never by listing the 50,000 val files.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

from .. import classes
from ..errors import UserError, cannot
from .base import Source, SourceImage, SourceRef, is_image_name
from .groundtruth import DEVKIT_ARCHIVE, DEVKIT_DIR, DEVKIT_GROUND_TRUTH, KAGGLE_SOLUTION, read_label_file

KAGGLE_SUBDIR = Path("ILSVRC", "Data", "CLS-LOC")


def _label_candidates(top: Path) -> list[Path]:
    """Where the flat val folder's labels may be, nearest first."""
    names = []
    for base in (top, top.parent, top.parent.parent.parent):  # the last: --imagenet .../ILSVRC/Data/CLS-LOC
        names += [base / DEVKIT_GROUND_TRUTH,
                  base / DEVKIT_DIR / "data" / DEVKIT_GROUND_TRUTH,
                  base / "devkit" / "data" / DEVKIT_GROUND_TRUTH,
                  base / "data" / DEVKIT_GROUND_TRUTH,
                  base / DEVKIT_ARCHIVE,  # still packed, as torchvision's ImageNet instructions leave it
                  base / DEVKIT_ARCHIVE.removesuffix(".gz"),
                  base / KAGGLE_SOLUTION]
    seen, out = set(), []
    for p in names:
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


def _val_style(val_dir: Path) -> str | None:
    """'per-class', 'flat' or None (no val folder), from the first few entries only."""
    if not val_dir.is_dir():
        return None
    with os.scandir(val_dir) as it:
        first = list(islice(it, 64))
    per_class = any(e.is_dir() and classes.is_wnid(e.name) for e in first)
    flat = any(e.is_file() and e.name.startswith("ILSVRC2012_val_") for e in first)
    if per_class and flat:
        raise UserError(f"{val_dir}: holds both class folders and flat ILSVRC2012_val_* files "
                        "(a half-finished valprep.sh?); finish sorting it or restore the flat folder")
    if flat:
        return "flat"
    return "per-class"


class FolderSource(Source):
    def __init__(self, root: Path, top: Path, layout: str):
        super().__init__(root)
        self.layout = layout
        self.top = top
        self.train_dir = top / "train"
        self.val_dir = top / "val"
        self.val_style = _val_style(self.val_dir)
        self.val_labels: dict[str, list[str]] = {}
        self.labels_file: Path | None = None
        if self.val_style == "flat":
            self._load_val_labels(root)

    def _load_val_labels(self, root: Path) -> None:
        candidates = _label_candidates(self.top) + ([root / KAGGLE_SOLUTION] if root != self.top else [])
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise UserError(f"{self.val_dir}: flat validation images need labels; looked for "
                            f"{DEVKIT_GROUND_TRUTH} or {DEVKIT_ARCHIVE} (devkit) or {KAGGLE_SOLUTION} (Kaggle) in "
                            f"{self.top}, {self.top / DEVKIT_DIR / 'data'} and their parents")
        self.labels_file = found
        for filename, wnid in read_label_file(found).items():
            self.val_labels.setdefault(wnid, []).append(filename)

    def describe(self) -> str:
        val = {"flat": f"flat val labelled by {self.labels_file}", "per-class": "val per class",
               None: "no val folder"}[self.val_style]
        return f"{self.layout} at {self.top} ({val})"

    def looked_in(self, wnid: str) -> str:
        where = [str(self.train_dir / wnid) + "/"]
        if self.val_style == "per-class":
            where.append(str(self.val_dir / wnid) + "/")
        elif self.val_style == "flat":
            where.append(f"{self.val_dir}/ (images labelled {wnid} in {self.labels_file.name})")
        return " and ".join(where)

    def images(self, wnid: str) -> Iterator[SourceImage]:
        yield from self._scan_dir("train", wnid, self.train_dir / wnid)
        if self.val_style == "per-class":
            yield from self._scan_dir("val", wnid, self.val_dir / wnid)
        elif self.val_style == "flat":
            for filename in self.val_labels.get(wnid, ()):
                path = self.val_dir / filename
                if path.is_file():
                    yield SourceImage("val", wnid, filename, SourceRef(str(path)))

    @staticmethod
    def _scan_dir(split: str, wnid: str, folder: Path) -> Iterator[SourceImage]:
        try:
            it = os.scandir(folder)
        except FileNotFoundError:
            return
        except NotADirectoryError:
            raise UserError(f"{folder}: expected a class folder, found a file") from None
        except OSError as exc:
            raise cannot(folder, "list", exc, UserError) from None
        with it:  # one entry at a time: a class is never held whole
            while True:
                try:
                    e = next(it)
                except StopIteration:
                    return
                except OSError as exc:
                    raise cannot(folder, "list", exc, UserError) from None
                if is_image_name(e.name):
                    yield SourceImage(split, wnid, e.name, SourceRef(e.path))


def detect_extracted(root: Path) -> Source | None:
    if (root / "train").is_dir() or (root / "val").is_dir():
        return FolderSource(root, root, "extracted folders")
    return None


def detect_kaggle(root: Path) -> Source | None:
    top = root / KAGGLE_SUBDIR
    if top.is_dir():
        return FolderSource(root, top, "Kaggle ILSVRC/Data/CLS-LOC tree")
    return None


LOOKED_FOR = {
    "extracted folders": "train/<wnid>/ and val/ (per class or flat with devkit/Kaggle labels)",
    "Kaggle": f"{KAGGLE_SUBDIR}/train and /val with {KAGGLE_SOLUTION}",
}
