"""The Hugging Face `imagenet-1k` copy as parquet shards: only the rows a build needs are read.

`data/train-<nnnnn>-of-<NNNNN>.parquet` and `data/validation-<nnnnn>-of-<NNNNN>.parquet` hold rows
`{image: {bytes, path}, label}`; `label` is the class index in sorted-WNID order and `path` the
Hugging Face file name (`n01440764_10026_n01440764.JPEG`), named back to the ImageNet name as for
the tar.gz shards. Test shards (label -1) are never read.

`select` reads the `label` column of every row group (a few KB each), then the `image` column of
only the row groups that hold a planned class, and copies those rows' bytes into a spill file
(`spill.py`). Parquet reads a column of a row group as a unit, so a row group mixing classes is
read whole. Needs pyarrow: `pip install 'imagenette-build[parquet]'`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from .. import classes
from ..errors import DataError, UserError
from ..progress import Progress
from .base import Source, SourceImage
from .hf_shards import imagenet_name, shard_folder
from .spill import Spill

LAYOUT = "Hugging Face imagenet-1k parquet shards"
LOOKED_FOR = "data/train-<n>-of-<N>.parquet and/or data/validation-<n>-of-<N>.parquet"
SHARD_RE = re.compile(r"^(?P<split>train|validation)-(?P<n>\d+)-of-\d+\.parquet$")
SPLITS = {"train": "train", "validation": "val"}
INSTALL_HINT = "pip install 'imagenette-build[parquet]'"
# Hugging Face's imagenet-1k shards are ~300-500 MB files of row groups far smaller than these.
MAX_ROW_GROUP_ROWS = 1_000_000
MAX_ROW_GROUP_BYTES = 1 << 30


def _pyarrow_parquet(where: Path):
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError(f"{where}: reading Hugging Face parquet shards needs pyarrow: {INSTALL_HINT}") from None
    return pa, pq


class HFParquetSource(Source):
    layout = LAYOUT

    def __init__(self, root: Path, shards: list[tuple[str, Path]]):
        super().__init__(root)
        self.shards = shards  # [(ILSVRC split, path)], train first
        self.spill: Spill | None = None
        self.selected: set[str] | None = None
        self.row_groups_read = 0  # image columns actually read (reported, and checked by the tests)

    def describe(self) -> str:
        counts = {}
        for split, _ in self.shards:
            counts[split] = counts.get(split, 0) + 1
        what = ", ".join(f"{n} {split} shard{'s' if n > 1 else ''}" for split, n in counts.items())
        return f"{self.layout} at {shard_folder(self.root)} ({what})"

    def looked_in(self, wnid: str) -> str:
        index = classes.by_wnid()[wnid].index if wnid in classes.by_wnid() else "?"
        return f"the parquet shards in {shard_folder(self.root)} (rows with label {index})"

    def select(self, wnids: Iterable[str], progress: Progress) -> None:
        pa, pq = _pyarrow_parquet(shard_folder(self.root))
        wanted = set(wnids)
        by_index = {c.index: c.wnid for c in classes.all_classes()}
        wanted_labels = sorted(c.index for c in classes.all_classes() if c.wnid in wanted)
        self.close()
        self.spill = Spill("parquet")
        self.row_groups_read = 0
        bar = progress.bar("read parquet", total=sum(p.stat().st_size for _, p in self.shards), unit_bytes=True)
        try:
            for split, path in self.shards:
                self._read_shard(pa, pq, split, path, wanted_labels, by_index)
                bar.update(path.stat().st_size)
            self.spill.finish()
        finally:
            bar.close()
        self.selected = wanted

    def _read_shard(self, pa, pq, split, path: Path, wanted_labels: list[int], by_index: dict[int, str]) -> None:
        import pyarrow.compute as pc

        try:
            pf = pq.ParquetFile(path)
            names = pf.schema_arrow.names
            if "image" not in names or "label" not in names:
                raise DataError(f"{path}: has no image and label columns (found {', '.join(names)}); "
                                "is this Hugging Face's imagenet-1k?")
            wanted = pa.array(wanted_labels, type=pf.schema_arrow.field("label").type)
            for rg in range(pf.metadata.num_row_groups):
                _check_row_group(pf.metadata, rg, path)
                labels = pf.read_row_group(rg, columns=["label"]).column(0)
                rows = pc.indices_nonzero(pc.is_in(labels, value_set=wanted)).to_pylist()
                if not rows:
                    continue
                images = pf.read_row_group(rg, columns=["image"]).column(0).take(rows).to_pylist()
                self.row_groups_read += 1
                for row, image, label in zip(rows, images, labels.take(rows).to_pylist()):
                    where = f"{path} row group {rg} row {row}"
                    if not image or not image.get("bytes") or not image.get("path"):
                        raise DataError(f"{where}: no image bytes or no file name; the file name is needed to "
                                        "name the member")
                    filename, wnid = imagenet_name(image["path"], where)
                    if wnid != by_index[label]:
                        raise DataError(f"{where}: label {label} is {by_index[label]} but the file name "
                                        f"{image['path']!r} says {wnid}")
                    self.spill.add(split, wnid, filename, image["bytes"])
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"{path}: cannot read this parquet file ({exc})") from None

    def images(self, wnid: str) -> Iterator[SourceImage]:
        if self.selected is None or wnid not in self.selected:
            self.select((self.selected or set()) | {wnid}, Progress(quiet=True))
        yield from self.spill.images(wnid)

    def close(self) -> None:
        if self.spill is not None:
            self.spill.remove()
            self.spill = None
        self.selected = None


def _check_row_group(metadata, rg: int, path: Path) -> None:
    """Parquet reads a column of a row group whole: one that declares more rows or bytes than any
    real shard holds is refused from the footer, before it is read (a hostile file could declare
    gigabytes in one row group)."""
    group = metadata.row_group(rg)
    size = sum(group.column(i).total_uncompressed_size for i in range(group.num_columns))
    if group.num_rows > MAX_ROW_GROUP_ROWS or size > MAX_ROW_GROUP_BYTES:
        raise DataError(f"{path}: row group {rg} declares {group.num_rows:,} rows and {size:,} bytes, more than "
                        f"a shard's row group may hold ({MAX_ROW_GROUP_ROWS:,} rows, {MAX_ROW_GROUP_BYTES:,} bytes)")


def detect(root: Path) -> Source | None:
    folder = shard_folder(root)
    if not folder.is_dir():
        return None
    shards = []
    for p in folder.iterdir():
        m = SHARD_RE.match(p.name)
        if m and p.is_file():
            shards.append((0 if m["split"] == "train" else 1, int(m["n"]), SPLITS[m["split"]], p))
    if not shards:
        return None
    return HFParquetSource(root, [(split, p) for _, _, split, p in sorted(shards)])
