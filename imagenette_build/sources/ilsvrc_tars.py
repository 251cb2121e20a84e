"""The original ILSVRC-2012 downloads, read in place: nothing is extracted.

- `ILSVRC2012_img_train.tar` (138 GB): a plain tar of 1000 class tars `<wnid>.tar`, each a plain tar
  of `<wnid>_<n>.JPEG`. The outer headers are read one by one, seeking past each class tar, until
  every wanted class is found; then the headers of those class tars only. Each image becomes an
  absolute (offset, length) in the outer file. Imagenette's 10 classes cost about 1000 + 13,000
  headers of 512 bytes, whatever the size of the tar.
- `ILSVRC2012_img_val.tar` (6.3 GB): 50,000 flat `ILSVRC2012_val_<n>.JPEG`, labelled by the devkit
  (`ILSVRC2012_devkit_t12.tar.gz`, read from inside the archive; or an extracted devkit, or
  Kaggle's LOC_val_solution.csv). Its headers are scanned until every wanted image is found.

Workers then read each image with one seek and one read (`SourceRef`), from any process.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from .. import classes
from ..errors import DataError, UserError, cannot
from ..progress import Progress
from .base import Source, SourceImage, SourceRef, is_image_name
from .groundtruth import DEVKIT_ARCHIVE, DEVKIT_GROUND_TRUTH, KAGGLE_SOLUTION, find_val_labels
from .tarscan import TarMember, scan_members

TRAIN_TAR = "ILSVRC2012_img_train.tar"
VAL_TAR = "ILSVRC2012_img_val.tar"
LAYOUT = "original ILSVRC-2012 tars"
LOOKED_FOR = f"{TRAIN_TAR} and/or {VAL_TAR} (+ {DEVKIT_ARCHIVE})"


def _open(path: Path):
    try:
        return open(path, "rb", buffering=0)  # unbuffered: a 512-byte header read reads 512 bytes
    except OSError as exc:
        raise cannot(path, "open", exc, UserError) from None


class OriginalTarsSource(Source):
    layout = LAYOUT

    def __init__(self, root: Path, train_tar: Path | None, val_tar: Path | None):
        super().__init__(root)
        self.train_tar = train_tar
        self.val_tar = val_tar
        self.wanted: set[str] | None = None  # None: every class (no select() call)
        self._class_tars: dict[str, TarMember] | None = None
        self._val_labels: dict[str, str] | None = None
        self.labels_file: Path | None = None
        self._val_index: dict[str, list[TarMember]] | None = None

    def describe(self) -> str:
        files = [p.name for p in (self.train_tar, self.val_tar) if p is not None]
        labels = f", val labelled by {self.labels_file.name}" if self.labels_file else ""
        return f"{self.layout} at {self.root} ({', '.join(files)}{labels})"

    def looked_in(self, wnid: str) -> str:
        where = []
        if self.train_tar:
            where.append(f"{self.train_tar} member {wnid}.tar")
        if self.val_tar:
            where.append(f"{self.val_tar} (images labelled {wnid})")
        return " and ".join(where)

    def select(self, wnids: Iterable[str], progress: Progress) -> None:
        self.wanted = set(wnids)
        if self.val_tar is not None:
            self._load_val_labels()  # a missing or wrong devkit is reported before any scanning

    # -- train ------------------------------------------------------------------------------------
    def _find_class_tars(self) -> dict[str, TarMember]:
        """{wnid: the class tar member}, from the outer headers; stops once every wanted class is seen."""
        if self._class_tars is None:
            found: dict[str, TarMember] = {}
            with _open(self.train_tar) as f:
                for member in scan_members(f, str(self.train_tar)):
                    stem, dot, ext = member.basename.rpartition(".")
                    if dot and ext == "tar" and classes.is_wnid(stem):
                        found[stem] = member
                        if self.wanted is not None and self.wanted <= found.keys():
                            break
            self._class_tars = found
        return self._class_tars

    def _train_images(self, wnid: str) -> Iterator[SourceImage]:
        class_tars = self._find_class_tars()
        outer = class_tars.get(wnid)
        if outer is None:
            name = classes.by_wnid()[wnid].short_name if wnid in classes.by_wnid() else "?"
            raise DataError(f"{self.train_tar}: has no {wnid}.tar (class {wnid} {name}); it holds "
                            f"{len(class_tars)} class tars: an incomplete download?")
        where = f"{self.train_tar} member {outer.name}"
        path = str(self.train_tar)
        with _open(self.train_tar) as f:
            inner = list(scan_members(f, where, outer.offset, outer.offset + outer.size))
        for m in inner:
            if is_image_name(m.basename):
                yield SourceImage("train", wnid, m.basename, SourceRef(path, m.offset, m.size))

    # -- val --------------------------------------------------------------------------------------
    def _load_val_labels(self) -> dict[str, str]:
        if self._val_labels is None:
            found = find_val_labels(self.root)
            if found is None:
                raise UserError(f"{self.val_tar}: validation images need the devkit's labels: put "
                                f"{DEVKIT_ARCHIVE} (or {DEVKIT_GROUND_TRUTH}, or Kaggle's {KAGGLE_SOLUTION}) "
                                f"beside it in {self.root}")
            self.labels_file, self._val_labels = found
        return self._val_labels

    def _index_val(self) -> dict[str, list[TarMember]]:
        """{wnid: val members}, wanted classes only; scanning stops once all of them are found."""
        if self._val_index is None:
            labels = self._load_val_labels()
            needed = sum(1 for w in labels.values() if self.wanted is None or w in self.wanted)
            index: dict[str, list[TarMember]] = {}
            taken = 0
            with _open(self.val_tar) as f:
                for member in scan_members(f, str(self.val_tar)):
                    name = member.basename
                    if not is_image_name(name):
                        continue
                    wnid = labels.get(name)
                    if wnid is None:
                        raise UserError(f"{self.val_tar}: holds {name}, which {self.labels_file.name} has no "
                                        "label for: the devkit and the val tar do not match")
                    if self.wanted is None or wnid in self.wanted:
                        index.setdefault(wnid, []).append(member)
                        taken += 1
                        if taken == needed:
                            break
            self._val_index = index
        return self._val_index

    def _val_images(self, wnid: str) -> Iterator[SourceImage]:
        path = str(self.val_tar)
        for m in self._index_val().get(wnid, ()):
            yield SourceImage("val", wnid, m.basename, SourceRef(path, m.offset, m.size))

    def images(self, wnid: str) -> Iterator[SourceImage]:
        if self.wanted is not None and wnid not in self.wanted:
            self.wanted.add(wnid)  # asked without select(): scan again, this class included
            self._class_tars = self._val_index = None
        if self.train_tar is not None:
            yield from self._train_images(wnid)
        if self.val_tar is not None:
            yield from self._val_images(wnid)


def detect(root: Path) -> Source | None:
    train, val = root / TRAIN_TAR, root / VAL_TAR
    if not (train.is_file() or val.is_file()):
        return None
    return OriginalTarsSource(root, train if train.is_file() else None, val if val.is_file() else None)
