"""How the sample ImageNet lies on disk, layout by layout (`samplegen` makes the images).

The extracted layouts put each image at `image_path` and keep the validation labels as the layout
does (`write_labels`: the devkit's ground truth, as a file or inside the devkit archive, or Kaggle's
LOC_val_solution.csv). The downloaded layouts are written as they come, never extracted, one writer
each in `ARCHIVE_WRITERS`, fed a stream of (image, bytes) in `archive_order`: `ilsvrc-tars`
(ILSVRC2012_img_train.tar of class tars, ILSVRC2012_img_val.tar), `hf-shards` (Hugging Face
data/train_images_<n>.tar.gz, data/val_images.tar.gz) and `hf-parquet` (data/train-*.parquet,
data/validation-*.parquet; needs pyarrow).
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import classes
from .errors import UserError, cannot
from .safewrite import create_new
from .sources.folders import KAGGLE_SUBDIR
from .sources.ilsvrc_tars import TRAIN_TAR, VAL_TAR
from .sources.groundtruth import DEVKIT_ARCHIVE, DEVKIT_DIR, DEVKIT_GROUND_TRUTH, KAGGLE_SOLUTION

FOLDER_LAYOUTS = ("folders", "flat-devkit", "flat-devkit-archive", "flat-kaggle-csv", "kaggle")
ARCHIVE_LAYOUTS = ("ilsvrc-tars", "hf-shards", "hf-parquet")
LAYOUTS = FOLDER_LAYOUTS + ARCHIVE_LAYOUTS
HF_TRAIN_SHARDS = 5  # data/train_images_0..4.tar.gz, as on the Hub
PARQUET_TRAIN_SHARDS = 2
PARQUET_ROWS_PER_GROUP = 8  # small, so the tests see row groups that are skipped


@dataclass(frozen=True)
class SampleImage:
    """An ILSVRC image of the sample, as its name and class."""

    split: str  # ILSVRC split: train or val
    wnid: str
    filename: str


def new_file(path: Path):
    """`path` made afresh for writing, never through a link planted there (`safewrite.create_new`)."""
    return open(create_new(path), "wb")


def write_file(path: Path, data: bytes | str) -> None:
    with new_file(path) as f:
        f.write(data.encode() if isinstance(data, str) else data)


SAMPLE_MARK = ".imagenette-build-sample"  # in a folder sample-imagenet wrote: it may write there again


def claim_folder(out: Path) -> None:
    """`out` may receive a sample: a new or empty folder (then marked as a sample's), or one a
    sample was written to before. Anything else may hold the user's files, which a sample of the
    same names would overwrite (a real ImageNet copy, given by mistake): refused."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        if not (out / SAMPLE_MARK).is_file() and any(True for _ in os.scandir(out)):
            raise UserError(f"{out}: a folder that holds files and that sample-imagenet did not write; give a new "
                            "or empty folder (a sample would overwrite the files of the same names)")
        write_file(out / SAMPLE_MARK, "A synthetic ImageNet written by imagenette-build sample-imagenet.\n")
    except OSError as exc:
        raise cannot(out, "write the sample there", exc, UserError) from None


def name_seed(filename: str) -> int:
    """The seed of what the sample derives from an image's name: its content (samplegen) and its
    Hugging Face train shard."""
    return int.from_bytes(hashlib.sha256(filename.encode()).digest()[:8], "little")


def image_path(out: Path, layout: str, im: SampleImage) -> Path:
    top = out / KAGGLE_SUBDIR if layout == "kaggle" else out
    if im.split == "train":
        return top / "train" / im.wnid / im.filename
    if layout == "folders":
        return top / "val" / im.wnid / im.filename
    return top / "val" / im.filename


def _devkit_lines(wnid_of: list[str]) -> str:
    by_wnid = classes.by_wnid()
    return "".join(f"{by_wnid[w].devkit_id}\n" for w in wnid_of)


def write_labels(out: Path, layout: str, wnid_of: list[str]) -> None:
    """Labels for all 50,000 val numbers (`wnid_of[n - 1]` labels val number n), as the layout keeps them."""
    if layout == "flat-devkit":
        path = out / DEVKIT_DIR / "data" / DEVKIT_GROUND_TRUTH
        path.parent.mkdir(parents=True, exist_ok=True)
        write_file(path, _devkit_lines(wnid_of))
    elif layout in ("ilsvrc-tars", "flat-devkit-archive"):
        _write_devkit_archive(out / DEVKIT_ARCHIVE, _devkit_lines(wnid_of).encode())
    elif layout in ("flat-kaggle-csv", "kaggle"):
        rows = [f"ILSVRC2012_val_{n:08d},{w} 10 10 100 100 \n" for n, w in enumerate(wnid_of, start=1)]
        write_file(out / KAGGLE_SOLUTION, "ImageId,PredictionString\n" + "".join(rows))
        if layout == "kaggle":
            write_file(out / "LOC_synset_mapping.txt",
                "".join(f"{c.wnid} {', '.join(c.names)}\n" for c in classes.all_classes()))


def _tar_info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 1_340_000_000, 0o644
    return info


def _write_devkit_archive(path: Path, ground_truth: bytes) -> None:
    readme = b"Synthetic stand-in for the ILSVRC2012 devkit, written by imagenette-build sample-imagenet.\n"
    with new_file(path) as f, tarfile.open(fileobj=f, mode="w:gz", format=tarfile.GNU_FORMAT) as tar:
        for name, data in ((f"{DEVKIT_DIR}/COPYING", readme),
                           (f"{DEVKIT_DIR}/data/{DEVKIT_GROUND_TRUTH}", ground_truth)):
            tar.addfile(_tar_info(name, len(data)), io.BytesIO(data))


def hf_name(im: SampleImage) -> str:
    """The Hugging Face file name: the ImageNet name with _<wnid> before the extension."""
    stem, dot, ext = im.filename.rpartition(".")
    return f"{stem}_{im.wnid}{dot}{ext}"


def archive_order(layout: str, images: list[SampleImage]) -> list[SampleImage]:
    if layout == "ilsvrc-tars":  # train: class by class, as ILSVRC2012_img_train.tar; val by number
        return sorted(images, key=lambda im: (im.split != "train", im.wnid if im.split == "train" else "",
                                              im.filename))
    if layout == "hf-shards":  # no order to rely on: shuffled by name
        return sorted(images, key=lambda im: (im.split, hashlib.sha256(im.filename.encode()).hexdigest()))
    return sorted(images, key=lambda im: (im.split, im.wnid if im.split == "train" else "", im.filename))


def _write_ilsvrc_tars(out: Path, stream: Iterator[tuple[SampleImage, bytes]]) -> None:
    with new_file(out / TRAIN_TAR) as train_file, new_file(out / VAL_TAR) as val_file, \
            tarfile.open(fileobj=train_file, mode="w", format=tarfile.GNU_FORMAT) as train, \
            tarfile.open(fileobj=val_file, mode="w", format=tarfile.GNU_FORMAT) as val:
        current, inner, spool = None, None, None

        def add_class() -> None:
            inner.close()
            size = spool.tell()
            spool.seek(0)
            train.addfile(_tar_info(f"{current}.tar", size), spool)
            spool.close()

        for im, data in stream:
            if im.split == "val":
                val.addfile(_tar_info(im.filename, len(data)), io.BytesIO(data))
                continue
            if im.wnid != current:
                if current is not None:
                    add_class()
                current = im.wnid
                spool = tempfile.SpooledTemporaryFile(max_size=64 << 20)
                inner = tarfile.open(fileobj=spool, mode="w", format=tarfile.GNU_FORMAT)
            inner.addfile(_tar_info(im.filename, len(data)), io.BytesIO(data))
        if current is not None:
            add_class()


def _write_hf_shards(out: Path, stream: Iterator[tuple[SampleImage, bytes]]) -> None:
    data_dir = out / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    files = [new_file(data_dir / f"train_images_{i}.tar.gz") for i in range(HF_TRAIN_SHARDS)]
    files.append(new_file(data_dir / "val_images.tar.gz"))
    *shards, val = [tarfile.open(fileobj=f, mode="w:gz", format=tarfile.GNU_FORMAT) for f in files]
    try:
        for im, data in stream:
            tar = val if im.split == "val" else shards[name_seed(im.filename) % HF_TRAIN_SHARDS]
            tar.addfile(_tar_info(hf_name(im), len(data)), io.BytesIO(data))
    finally:
        for tar, f in zip([*shards, val], files):
            tar.close()
            f.close()


def need_pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError("--layout hf-parquet needs pyarrow: pip install 'imagenette-build[parquet]'") from None
    return pa, pq


def _write_hf_parquet(out: Path, stream: Iterator[tuple[SampleImage, bytes]]) -> None:
    pa, pq = need_pyarrow()
    data_dir = out / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    schema = pa.schema([("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                        ("label", pa.int64())])
    index = {c.wnid: c.index for c in classes.all_classes()}
    rows = {"train": [], "val": []}
    for im, data in stream:
        rows[im.split].append((im, data))

    def write(path: Path, part: list) -> None:
        with new_file(path) as f, pq.ParquetWriter(f, schema) as writer:
            group: list = []
            for k, (im, data) in enumerate(part):
                group.append(({"bytes": data, "path": hf_name(im)}, index[im.wnid]))
                last = k + 1 == len(part)
                # train row groups hold one class each (so some hold decoys only); val ones are mixed
                if last or len(group) == PARQUET_ROWS_PER_GROUP or (
                        im.split == "train" and part[k + 1][0].wnid != im.wnid):
                    writer.write_table(pa.table({"image": [g[0] for g in group], "label": [g[1] for g in group]},
                                                schema=schema))
                    group = []

    train = rows["train"]
    cut = math.ceil(len(train) / PARQUET_TRAIN_SHARDS)
    for i in range(PARQUET_TRAIN_SHARDS):
        write(data_dir / f"train-{i:05d}-of-{PARQUET_TRAIN_SHARDS:05d}.parquet", train[i * cut:(i + 1) * cut])
    write(data_dir / "validation-00000-of-00001.parquet", rows["val"])


ARCHIVE_WRITERS = {"ilsvrc-tars": _write_ilsvrc_tars, "hf-shards": _write_hf_shards, "hf-parquet": _write_hf_parquet}
