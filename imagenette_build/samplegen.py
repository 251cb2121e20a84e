"""A synthetic ImageNet-1k copy, for demos, tests and benchmarks (there is no ImageNet in CI).

Every image is a pure function of its file name (seeded from its sha256), so every layout holds the
same bytes for the same name and a build from any layout can be compared byte for byte. Content is
photo-like (gradients, shapes, noise: JPEG has real work to do); about 5 % are grayscale, 3 % tiny
(smaller than 160 px), 2 % very wide or very tall, 10 % large (DCT-scaled decoding kicks in), some
are 4:4:4. Decoy classes and decoy val images (not in the manifest) are written too, so a reader
that takes too much is caught.

With `photos`, each image is instead the bytes of one real photo from that folder (cycled), for
benchmarks on real JPEG content.
"""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from . import classes
from .engine import batches, ordered_map
from .manifest import Manifest
from .sources.folders import KAGGLE_SUBDIR
from .sources.labels import DEVKIT_GROUND_TRUTH, KAGGLE_SOLUTION, VAL_IMAGES, val_filename

LAYOUTS = ("folders", "flat-devkit", "flat-kaggle-csv", "kaggle")
DECOY_CLASSES = ("n03888605", "n02119789")  # parallel bars (parachute's neighbour), kit fox (devkit ID 1)
NORMAL_SIZES = [(500, 375), (500, 333), (375, 500), (333, 500), (500, 500), (400, 300), (500, 400), (640, 480)]
LARGE_SIZES = [(1024, 768), (1600, 1200), (768, 1024), (2400, 1600)]


@dataclass(frozen=True)
class SampleSpec:
    out: Path
    layout: str = "folders"
    per_class: int | None = None  # None: the manifest's whole file list
    photos: Path | None = None


@dataclass(frozen=True)
class SampleImage:
    split: str  # ILSVRC split: train or val
    wnid: str
    filename: str


def _seed(filename: str) -> int:
    return int.from_bytes(hashlib.sha256(filename.encode()).digest()[:8], "little")


def image_shape(filename: str) -> tuple[tuple[int, int], str, int]:
    """((width, height), mode, subsampling) of the synthetic image for this file name."""
    rng = np.random.default_rng(_seed(filename))
    kind = int(rng.integers(100))
    mode = "L" if kind < 5 else "RGB"
    if 5 <= kind < 8:
        size = [(75, 56), (120, 90), (100, 150), (159, 200)][int(rng.integers(4))]
    elif 8 <= kind < 10:
        size = [(1200, 180), (180, 900), (2000, 240)][int(rng.integers(3))]
    elif 10 <= kind < 20:
        size = LARGE_SIZES[int(rng.integers(len(LARGE_SIZES)))]
    else:
        size = NORMAL_SIZES[int(rng.integers(len(NORMAL_SIZES)))]
    subsampling = 0 if kind % 7 == 0 else 2  # some 4:4:4, most 4:2:0
    return size, mode, subsampling


def synthetic_jpeg(filename: str) -> bytes:
    """Photo-like JPEG bytes, a pure function of the file name."""
    (w, h), mode, subsampling = image_shape(filename)
    rng = np.random.default_rng(_seed(filename) ^ 0x5EED)
    # Smooth colour gradient, computed at low resolution and upscaled (cheap, photo-like).
    lo = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    img = Image.fromarray(lo, "RGB").resize((w, h), Image.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 9))):
        x0, x1 = sorted(rng.integers(0, w, 2).tolist())
        y0, y1 = sorted(rng.integers(0, h, 2).tolist())
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = int(rng.integers(3))
        if shape == 0:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        elif shape == 1:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        else:
            draw.polygon([(x0, y1), ((x0 + x1) // 2, y0), (x1, y1)], fill=colour)
    arr = np.asarray(img, dtype=np.int16)
    noise = rng.integers(-12, 13, size=(h, w, 1), dtype=np.int16)  # luminance grain
    arr = np.clip(arr + noise, 0, 255).astype(np.uint8)
    out = Image.fromarray(arr, "RGB")
    if mode == "L":
        out = out.convert("L")
    buf = io.BytesIO()
    out.save(buf, format="JPEG", quality=90, subsampling=subsampling if mode == "RGB" else -1)
    return buf.getvalue()


def wanted_images(manifest: Manifest, per_class: int | None) -> list[SampleImage]:
    """The ILSVRC images the manifest needs (its list), or `per_class` made-up ones per class."""
    if manifest.split.policy == "files" and per_class is None:
        out = []
        for listed in manifest.listed_images():
            split = "val" if listed.filename.startswith("ILSVRC2012_val_") else "train"
            out.append(SampleImage(split, listed.wnid, listed.filename))
        return out
    if manifest.split.policy == "files":
        return _subset_of_list(manifest, per_class)
    per_class = per_class or 10
    return _made_up(manifest.wnids, per_class)


def _subset_of_list(manifest: Manifest, per_class: int) -> list[SampleImage]:
    taken: dict[tuple[str, str], int] = {}
    out = []
    limits = {"train": per_class, "val": max(1, math.ceil(per_class / 5))}
    for listed in manifest.listed_images():
        key = (listed.split, listed.wnid)
        limit = limits.get(listed.split, per_class)
        if taken.get(key, 0) >= limit:
            continue
        taken[key] = taken.get(key, 0) + 1
        split = "val" if listed.filename.startswith("ILSVRC2012_val_") else "train"
        out.append(SampleImage(split, listed.wnid, listed.filename))
    return out


def _made_up(wnids: tuple[str, ...] | list[str], per_class: int) -> list[SampleImage]:
    by_wnid = classes.by_wnid()
    out = []
    n_val = max(1, math.ceil(per_class / 5))
    for wnid in wnids:
        index = by_wnid[wnid].index
        for k in range(per_class):
            out.append(SampleImage("train", wnid, f"{wnid}_{1000 + 37 * k}.JPEG"))
        for j in range(min(n_val, 50)):
            out.append(SampleImage("val", wnid, val_filename(1 + index * 50 + j)))
    return out


def decoys(wanted: list[SampleImage]) -> list[SampleImage]:
    """A few images of classes outside the manifest, with val numbers no wanted image uses."""
    used = {im.filename for im in wanted}
    wanted_wnids = {im.wnid for im in wanted}
    out = []
    free_val = (val_filename(n) for n in range(VAL_IMAGES, 0, -1) if val_filename(n) not in used)
    for wnid in DECOY_CLASSES:
        if wnid in wanted_wnids:
            continue
        out += [SampleImage("train", wnid, f"{wnid}_{k}.JPEG") for k in (1, 2, 3)]
        out += [SampleImage("val", wnid, next(free_val)) for _ in range(2)]
    return out


def image_path(out: Path, layout: str, im: SampleImage) -> Path:
    top = out / KAGGLE_SUBDIR if layout == "kaggle" else out
    if im.split == "train":
        return top / "train" / im.wnid / im.filename
    if layout == "folders":
        return top / "val" / im.wnid / im.filename
    return top / "val" / im.filename


def _write_batch(jobs: list[tuple[str, str]], photos: list[str]) -> int:
    for path, filename in jobs:
        if photos:
            data = Path(photos[_seed(filename) % len(photos)]).read_bytes()
        else:
            data = synthetic_jpeg(filename)
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return len(jobs)


def _val_labels(images: list[SampleImage]) -> dict[int, str]:
    labels = {}
    for im in images:
        if im.split == "val":
            labels[int(im.filename[len("ILSVRC2012_val_"):-len(".JPEG")])] = im.wnid
    return labels


def _write_labels(out: Path, layout: str, images: list[SampleImage], other: list[str]) -> None:
    """Labels for all 50,000 val numbers: ours, and a non-manifest class for the rest."""
    labels = _val_labels(images)
    wnid_of = [labels.get(n) or other[n % len(other)] for n in range(1, VAL_IMAGES + 1)]
    if layout == "flat-devkit":
        by_wnid = classes.by_wnid()
        path = out / "ILSVRC2012_devkit_t12" / "data" / DEVKIT_GROUND_TRUTH
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{by_wnid[w].devkit_id}\n" for w in wnid_of))
    elif layout in ("flat-kaggle-csv", "kaggle"):
        rows = [f"ILSVRC2012_val_{n:08d},{w} 10 10 100 100 \n" for n, w in enumerate(wnid_of, start=1)]
        (out / KAGGLE_SOLUTION).write_text("ImageId,PredictionString\n" + "".join(rows))
        if layout == "kaggle":
            (out / "LOC_synset_mapping.txt").write_text(
                "".join(f"{c.wnid} {', '.join(c.names)}\n" for c in classes.all_classes()))


def write_subset_manifest(manifest: Manifest, images: list[SampleImage], out: Path) -> Path:
    """A copy of a `files` manifest whose list holds only `images` (for --per-class samples)."""
    keep = {im.filename for im in images}
    list_name = manifest.split.list_file
    lines = (manifest.base_dir / list_name).read_text("utf-8").splitlines(keepends=True)
    body = [ln for ln in lines[1:] if ln.split(",", 1)[0].rsplit("/", 1)[-1] in keep]
    (out / list_name).write_text(lines[0] + "".join(body))
    for rf in manifest.root_files:
        if rf != list_name:
            (out / rf).write_bytes(manifest.read_root_file(rf))
    text = manifest.path.read_text("utf-8")
    text = text.replace(f'name = "{manifest.name}"', f'name = "{manifest.name}-sample"', 1)
    text = text.replace(f'stem = "{manifest.stem}"', f'stem = "{manifest.stem}-sample"', 1)
    path = out / f"{manifest.name}-sample.toml"
    path.write_text(text)
    return path


def generate(spec: SampleSpec, manifest: Manifest, jobs: int = 1, quiet: bool = True) -> dict:
    if spec.layout not in LAYOUTS:
        raise ValueError(f"unknown layout {spec.layout!r}")
    wanted = wanted_images(manifest, spec.per_class)
    extra = decoys(wanted)
    everything = wanted + extra
    photos = sorted(str(p) for p in spec.photos.glob("*.JPEG")) if spec.photos else []
    spec.out.mkdir(parents=True, exist_ok=True)
    work = [(str(image_path(spec.out, spec.layout, im)), im.filename) for im in everything]
    tasks = ((chunk, photos) for chunk in batches(work, 64))
    from tqdm import tqdm

    with tqdm(total=len(work), desc="sample", unit="img", disable=quiet) as bar:
        for n in ordered_map(_write_batch, tasks, jobs):
            bar.update(n)
    other = [c.wnid for c in classes.all_classes() if c.wnid not in set(manifest.wnids)]
    _write_labels(spec.out, spec.layout, everything, other)
    manifest_path = None
    if manifest.split.policy == "files" and spec.per_class is not None:
        manifest_path = write_subset_manifest(manifest, wanted, spec.out)
    return {"images": len(wanted), "decoys": len(extra), "manifest": manifest_path}
