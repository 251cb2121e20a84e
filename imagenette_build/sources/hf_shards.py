"""The Hugging Face `imagenet-1k` copy as its gzip-compressed tar shards, read in one pass.

`data/train_images_{0..4}.tar.gz` and `data/val_images.tar.gz` hold flat JPEGs whose names carry
the class: `n01440764_10026_n01440764.JPEG`, `ILSVRC2012_val_00000001_n01751748.JPEG`. Members are
named back to the ImageNet names (`n01440764_10026.JPEG`, `ILSVRC2012_val_00000001.JPEG`), as in the
original archives, so a manifest's file list finds them.

gzip cannot seek, so `prepare` reads every shard once, front to back (decompressed by ISA-L), and
copies only the images of the planned classes into a spill file (see `spill.py`); the build's
workers read them from there. The test shard (`test_images.tar.gz`) is never read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from isal import igzip_threaded

from .. import classes
from ..errors import DataError, UserError, cannot
from ..progress import Progress
from .base import Source, SourceImage, is_image_name
from .spill import Spill
from .tarscan import stream_members

LAYOUT = "Hugging Face imagenet-1k tar.gz shards"
LOOKED_FOR = "data/train_images_<n>.tar.gz and/or data/val_images.tar.gz"
TRAIN_SHARD_RE = re.compile(r"^train_images_(\d+)\.tar\.gz$")
VAL_SHARD = "val_images.tar.gz"
# <ImageNet name without extension>_<wnid>.<ext>
HF_NAME_RE = re.compile(r"^(?P<stem>.+)_(?P<wnid>n\d{8})(?P<ext>\.[A-Za-z]+)$")


def imagenet_name(hf_name: str, where: str) -> tuple[str, str]:
    """(ImageNet file name, wnid) of a Hugging Face file name: the class suffix taken off."""
    base = hf_name.rstrip("/").rsplit("/", 1)[-1]
    m = HF_NAME_RE.match(base)
    if m is None or m["wnid"] not in classes.by_wnid():
        raise DataError(f"{where}: {base!r} does not end in _<wnid>.JPEG as Hugging Face's imagenet-1k names do")
    stem, wnid = m["stem"], m["wnid"]
    if classes.is_wnid(stem.split("_", 1)[0]) and stem.split("_", 1)[0] != wnid:
        raise DataError(f"{where}: {base!r} names two classes ({stem.split('_', 1)[0]} and {wnid})")
    return stem + m["ext"], wnid


def shard_folder(root: Path) -> Path:
    """Where the shards are: DIR/data/ (as downloaded) or DIR itself."""
    return root / "data" if (root / "data").is_dir() else root


class HFShardsSource(Source):
    layout = LAYOUT

    def __init__(self, root: Path, train_shards: list[Path], val_shard: Path | None):
        super().__init__(root)
        self.shards = [("train", p) for p in train_shards] + ([("val", val_shard)] if val_shard else [])
        self.spill: Spill | None = None
        self.selected: set[str] | None = None

    def describe(self) -> str:
        names = ", ".join(p.name for _, p in self.shards)
        return f"{self.layout} at {shard_folder(self.root)} ({names})"

    def looked_in(self, wnid: str) -> str:
        return f"{', '.join(p.name for _, p in self.shards)} in {shard_folder(self.root)} (names ending _{wnid}.JPEG)"

    def select(self, wnids: Iterable[str], progress: Progress) -> None:
        wanted = set(wnids)
        self.close()
        self.spill = Spill("hf")
        total = sum(p.stat().st_size for _, p in self.shards)
        bar = progress.bar("read shards", total=total, unit_bytes=True)
        try:
            for split, path in self.shards:
                self._read_shard(split, path, wanted, bar)
            self.spill.finish()
        finally:
            bar.close()
        self.selected = wanted

    def _read_shard(self, split: str, path: Path, wanted: set[str], bar) -> None:
        def want(name: str) -> bool:
            base = name.rsplit("/", 1)[-1]
            m = HF_NAME_RE.match(base)
            if m is not None:
                return m["wnid"] in wanted
            if is_image_name(base):
                imagenet_name(base, str(path))  # raises: an image we cannot label
            return False

        try:
            raw = open(path, "rb")
        except OSError as exc:
            raise cannot(path, "open", exc, UserError) from None
        done = 0
        try:
            # ISA-L decompresses in its own thread while this one parses and spills: ~1.5x faster
            with raw, igzip_threaded.open(raw, "rb", threads=1) as gz:
                for name, data in stream_members(gz, str(path), want):
                    filename, wnid = imagenet_name(name, str(path))
                    self.spill.add(split, wnid, filename, data)
                    pos = raw.tell()
                    bar.update(pos - done)
                    done = pos
                bar.update(raw.tell() - done)
        except (EOFError, OSError) as exc:  # isal's BadGzipFile is an OSError
            raise DataError(f"{path}: truncated or corrupt gzip ({exc})") from None

    def images(self, wnid: str) -> Iterator[SourceImage]:
        if self.selected is None or wnid not in self.selected:
            # Asked without prepare(): one more pass, for this class and those already taken.
            self.select((self.selected or set()) | {wnid}, Progress(quiet=True))
        yield from self.spill.images(wnid)

    def close(self) -> None:
        if self.spill is not None:
            self.spill.remove()
            self.spill = None
        self.selected = None


def detect(root: Path) -> Source | None:
    folder = shard_folder(root)
    if not folder.is_dir():
        return None
    train = []
    for p in folder.iterdir():
        m = TRAIN_SHARD_RE.match(p.name)
        if m and p.is_file():
            train.append((int(m[1]), p))
    val = folder / VAL_SHARD
    if not train and not val.is_file():
        return None
    return HFShardsSource(root, [p for _, p in sorted(train)], val if val.is_file() else None)
