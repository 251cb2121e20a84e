"""A synthetic ImageNet-1k copy, for demos, tests and benchmarks (there is no ImageNet in CI).

Every image is a pure function of its file name (seeded from its sha256), so every layout holds the
same bytes for the same name and a build from any layout can be compared byte for byte. Content is
photo-like (gradients, shapes, noise: JPEG has real work to do); about 5 % are grayscale, 3 % tiny
(smaller than 160 px), 2 % very wide or very tall, 10 % large (DCT-scaled decoding kicks in), some
are 4:4:4. Decoy classes and decoy val images (not in the manifest) are written too, so a reader
that takes too much is caught.

With `photos`, each image is instead the bytes of one real photo from that folder (cycled), with
its file name added in a JPEG comment so that every file is distinct, for benchmarks on real JPEG
content.

Layouts: the extracted ones (`folders`, `flat-devkit`, `flat-devkit-archive`: flat val with the devkit
still packed, `flat-kaggle-csv`, `kaggle`) and the downloaded files as they come, never extracted
(`ilsvrc-tars`, `hf-shards`, `hf-parquet`); `samplelayouts` writes each. The validation labels give
every class exactly 50 of the 50,000 validation numbers, as the real devkit does.
"""

from __future__ import annotations

import io
import json
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from . import classes
from .engine import batches, ordered_map
from .manifest import Manifest
from .samplelayouts import (ARCHIVE_WRITERS, FOLDER_LAYOUTS, LAYOUTS, SampleImage, archive_order, claim_folder,
                            image_path, name_seed, need_pyarrow, write_file, write_labels)
from .sources.groundtruth import VAL_IMAGES, VAL_PER_CLASS, val_filename
from .transform import resize

DECOY_CLASSES = ("n03888605", "n02119789")  # parallel bars (parachute's neighbour), kit fox (devkit ID 1)
NORMAL_SIZES = [(500, 375), (500, 333), (375, 500), (333, 500), (500, 500), (400, 300), (500, 400), (640, 480)]
LARGE_SIZES = [(1024, 768), (1600, 1200), (768, 1024), (2400, 1600)]


@dataclass(frozen=True)
class SampleSpec:
    out: Path
    layout: str = "folders"
    per_class: int | None = None  # None: the manifest's whole file list
    photos: Path | None = None


def image_shape(filename: str) -> tuple[tuple[int, int], str, int]:
    """((width, height), mode, subsampling) of the synthetic image for this file name."""
    rng = np.random.default_rng(name_seed(filename))
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
    """Photo-like JPEG bytes, a pure function of the file name, the same with every Pillow: the
    pixels are made with numpy and the build's own resize (Pillow's drawing and RGB->L conversion
    may differ between Pillow versions and pillow-simd), then encoded by libjpeg-turbo."""
    (w, h), mode, subsampling = image_shape(filename)
    rng = np.random.default_rng(name_seed(filename) ^ 0x5EED)
    # Smooth colour gradient: a 4x4 grid of colours, interpolated (cheap, photo-like).
    lo = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    # upscaled with pillow-simd's arithmetic, which every Pillow here computes (transform.resize)
    arr = np.asarray(resize(Image.fromarray(lo, "RGB"), (w, h), "bicubic"), dtype=np.int16).copy()
    for _ in range(int(rng.integers(3, 9))):
        x0, x1 = sorted(rng.integers(0, w, 2).tolist())
        y0, y1 = sorted(rng.integers(0, h, 2).tolist())
        colour = rng.integers(0, 256, 3)
        shape = int(rng.integers(3))
        y, x = np.mgrid[y0:y1 + 1, x0:x1 + 1]  # the shape's box only
        if shape == 0:  # ellipse
            cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, max((x1 - x0) / 2, 0.5), max((y1 - y0) / 2, 0.5)
            mask = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1
        elif shape == 1:
            mask = np.ones(x.shape, dtype=bool)
        else:  # triangle: apex at the top middle
            mask = np.abs(x - (x0 + x1) / 2) <= (y - y0) / max(y1 - y0, 1) * max((x1 - x0) / 2, 0.5)
        arr[y0:y1 + 1, x0:x1 + 1][mask] = colour
    noise = rng.integers(-12, 13, size=(h, w, 1), dtype=np.int16)  # luminance grain
    arr = np.clip(arr + noise, 0, 255).astype(np.uint8)
    if mode == "L":  # ITU-R 601 luma in integers
        rgb = arr.astype(np.int32)
        luma = (rgb[..., 0] * 299 + rgb[..., 1] * 587 + rgb[..., 2] * 114 + 500) // 1000
        out = Image.fromarray(luma.astype(np.uint8))
    else:
        out = Image.fromarray(arr)
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


def _image_bytes(filename: str, photos: list[str]) -> bytes:
    if photos:
        return _unique_copy(Path(photos[name_seed(filename) % len(photos)]).read_bytes(), filename)
    return synthetic_jpeg(filename)


def _unique_copy(data: bytes, filename: str) -> bytes:
    """A JPEG with its file name in a comment (COM) segment after SOI: the same pixels and decode
    work, but distinct bytes for each copy of a cycled photo, as every ImageNet file is distinct (a
    cache keyed by content would otherwise make 13,394 copies of 40 photos cost 40 resizes)."""
    if not data.startswith(b"\xff\xd8"):
        return data
    comment = filename.encode()
    return data[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + data[2:]


def _write_batch(jobs: list[tuple[str, str]], photos: list[str]) -> int:
    for path, filename in jobs:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        write_file(p, _image_bytes(filename, photos))
    return len(jobs)


def _make_batch(filenames: list[str], photos: list[str]) -> list[bytes]:
    return [_image_bytes(f, photos) for f in filenames]


def _val_labels(images: list[SampleImage]) -> dict[int, str]:
    labels = {}
    for im in images:
        if im.split == "val":
            labels[int(im.filename[len("ILSVRC2012_val_"):-len(".JPEG")])] = im.wnid
    return labels


def val_ground_truth(images: list[SampleImage]) -> list[str]:
    """The wnid of each validation number 1..50,000: the sample's own, and the rest handed out so
    that every class has exactly 50, as in the real devkit."""
    labels = _val_labels(images)
    used = Counter(labels.values())
    quota = [c.wnid for c in classes.all_classes() for _ in range(max(0, VAL_PER_CLASS - used[c.wnid]))]
    spare = iter(quota)
    every = [c.wnid for c in classes.all_classes()]
    return [labels.get(n) or next(spare, None) or every[n % len(every)] for n in range(1, VAL_IMAGES + 1)]


def write_subset_manifest(manifest: Manifest, images: list[SampleImage], out: Path) -> Path:
    """A copy of a `files` manifest whose list holds only `images` (for --per-class samples)."""
    keep = {im.filename for im in images}
    list_name = manifest.split.list_file
    lines = (manifest.base_dir / list_name).read_text("utf-8").splitlines(keepends=True)
    body = [ln for ln in lines[1:] if ln.split(",", 1)[0].rsplit("/", 1)[-1] in keep]
    write_file(out / list_name, lines[0] + "".join(body))
    for rf in manifest.root_files:
        if rf != list_name:
            write_file(out / rf, manifest.read_root_file(rf))
    for members in {p.members for p in manifest.published if p.members}:  # named by the copied TOML
        write_file(out / members, (manifest.base_dir / members).read_bytes())
    text = manifest.path.read_text("utf-8")
    description = (f"A sample of {manifest.name} for trying the tool: {len(images):,} images of its list, written "
                   "by imagenette-build sample-imagenet; not the published dataset.")
    text = _set_description(text, description)
    if text.startswith("#"):  # the first comment says what the dataset is
        text = f"# A sample of {manifest.name}, written by imagenette-build sample-imagenet." + text[text.index("\n"):]
    text = text.replace(f'name = "{manifest.name}"', f'name = "{manifest.name}-sample"', 1)
    text = text.replace(f'stem = "{manifest.stem}"', f'stem = "{manifest.stem}-sample"', 1)
    path = out / f"{manifest.name}-sample.toml"
    write_file(path, text)
    return path


def _set_description(toml: str, description: str) -> str:
    """The TOML with its top-level `description` replaced (or added after `name`)."""
    line = f"description = {json.dumps(description)}"
    lines = toml.splitlines(keepends=True)
    for i, ln in enumerate(lines):
        if ln.startswith("["):
            break
        if ln.startswith("description"):
            lines[i] = line + "\n"
            return "".join(lines)
    return "".join(ln + (line + "\n" if ln.startswith("name") else "") for ln in lines)


def generate(spec: SampleSpec, manifest: Manifest, jobs: int = 1, quiet: bool = True) -> dict:
    if spec.layout not in LAYOUTS:
        raise ValueError(f"unknown layout {spec.layout!r}")
    if spec.layout == "hf-parquet":
        need_pyarrow()  # before any work
    wanted = wanted_images(manifest, spec.per_class)
    extra = decoys(wanted)
    everything = wanted + extra
    photos = sorted(str(p) for p in spec.photos.glob("*.JPEG")) if spec.photos else []
    claim_folder(spec.out)
    from tqdm import tqdm

    with tqdm(total=len(everything), desc="sample", unit="img", disable=quiet) as bar:
        if spec.layout in FOLDER_LAYOUTS:
            work = [(str(image_path(spec.out, spec.layout, im)), im.filename) for im in everything]
            for n in ordered_map(_write_batch, ((chunk, photos) for chunk in batches(work, 64)), jobs):
                bar.update(n)
        else:
            ordered = archive_order(spec.layout, everything)

            def stream() -> Iterator[tuple[SampleImage, bytes]]:
                chunks = list(batches(ordered, 64))
                tasks = (([im.filename for im in chunk], photos) for chunk in chunks)
                for chunk, datas in zip(chunks, ordered_map(_make_batch, tasks, jobs)):
                    yield from zip(chunk, datas)
                    bar.update(len(chunk))

            ARCHIVE_WRITERS[spec.layout](spec.out, stream())
    write_labels(spec.out, spec.layout, val_ground_truth(everything))
    manifest_path = None
    if manifest.split.policy == "files" and spec.per_class is not None:
        manifest_path = write_subset_manifest(manifest, wanted, spec.out)
    return {"images": len(wanted), "decoys": len(extra), "manifest": manifest_path}
