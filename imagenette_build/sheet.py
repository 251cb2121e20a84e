"""Contact sheets drawn: a row per class (its name and WNID), a few images each, on white.

`preview` draws them from an archive or an ImageNet copy (`contactsheet`); the build draws one of its
own images for the dataset card (`BuildSheet`, `png`). The images shown are the first of each class
by sha256 of their file name, so the sheet is the same on every run, --jobs and layout. The build's
sheet is also the same bytes across Pillow flavours: thumbnails are resized with the build's own
resampling (`transform.resize`), text is drawn with Pillow's built-in bitmap font, and the PNG is
written here, its pixels deflated by ISA-L as the resized archives are (Pillow's PNG encoder and the
zlib it links cut their blocks by version).
"""

from __future__ import annotations

import hashlib
import struct
import warnings
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from . import resample
from .transform import load_pixels, resize

THUMB = 128  # px, the longest side of a thumbnail
LABEL_WIDTH = 220  # px left of each row for the class name and WNID
GAP = 4
LINE = 15  # px from one line of a title to the next
MAX_PER_CLASS = 64
MAX_CLASSES = 200
CARD_PER_CLASS = 5  # images a class on a card's sheet
CARD_THUMB = 96


@dataclass
class Row:
    """One class: the `per_class` images with the smallest keys so far, as thumbnails (or, until
    they are drawn, as the bytes they are made from: `BuildSheet`)."""

    title: str
    per_class: int
    thumb: int = THUMB
    chosen: list[tuple[str, Image.Image | bytes]] = field(default_factory=list)  # (key, thumbnail)

    def wants(self, key: str) -> bool:
        return len(self.chosen) < self.per_class or key < max(k for k, _ in self.chosen)

    def add(self, key: str, thumb: Image.Image | bytes) -> None:
        self.chosen.append((key, thumb))
        if len(self.chosen) > self.per_class:
            self.chosen.remove(max(self.chosen, key=lambda item: item[0]))

    def thumbs(self) -> list[Image.Image]:
        return [t for _, t in sorted(self.chosen, key=lambda item: item[0])]


def key(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()


def title(wnid: str, names: dict[str, str]) -> str:
    name = names.get(wnid, "")
    return f"{name}\n{wnid}" if name else wnid


def _font():
    """Pillow's built-in bitmap font: the same glyphs in every Pillow (newer ones' `load_default`
    is a FreeType font, whose rendering follows the FreeType version)."""
    return getattr(ImageFont, "load_default_imagefont", ImageFont.load_default)()


def draw(rows: list[Row]) -> Image.Image:
    """Draw the rows: the title on the left, the thumbnails to its right, on white."""
    width, height = _size(rows)
    out = Image.new("RGB", (width, height), "white")
    top = 0
    for band in _bands(rows):
        out.paste(band, (0, top))
        top += band.height
    return out


def _size(rows: list[Row]) -> tuple[int, int]:
    thumb = rows[0].thumb if rows else THUMB
    width = LABEL_WIDTH + max((r.per_class for r in rows), default=1) * (thumb + GAP) + GAP
    return width, max(1, len(rows)) * (thumb + GAP) + GAP


def _bands(rows: list[Row]) -> Iterator[Image.Image]:
    """The sheet from top to bottom in horizontal bands, one a row (the gap above it, then the row),
    and the gap below the last: drawn a band at a time, a sheet of 200 classes is never held whole."""
    thumb = rows[0].thumb if rows else THUMB
    width, _ = _size(rows)
    font = _font()
    for row in rows or [None]:
        band = Image.new("RGB", (width, thumb + GAP), "white")
        if row is not None:
            canvas = ImageDraw.Draw(band)
            for k, line in enumerate(row.title.split("\n")):  # (one line at a time: Pillows space lines differently)
                canvas.text((GAP, GAP + 4 + k * LINE), line, fill="black", font=font)
            for j, t in enumerate(row.thumbs()):
                left = LABEL_WIDTH + j * (thumb + GAP)
                band.paste(t, (left + (thumb - t.width) // 2, GAP + (thumb - t.height) // 2))
        yield band
    yield Image.new("RGB", (width, GAP), "white")


def stable_thumbnail(data: bytes, size: int) -> Image.Image | None:
    """An RGB copy of an image whose longest side is `size` (never enlarged), resized as the build
    resizes (the same pixels on every Pillow); None if it does not decode."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = load_pixels(data)
            if img.mode not in ("RGB", "L"):
                img = img.convert("RGB")
            w, h = img.size
            scale = min(1.0, size / max(w, h))
            target = (max(1, round(w * scale)), max(1, round(h * scale)))
            if target != img.size:
                img = resize(img, target, "bicubic")
            return img.convert("RGB")
    except Exception:  # any decoder failure: the image is left out of the sheet
        return None


class BuildSheet:
    """The sheet of a build's images at one size: handed every image (`add`, in member order), it
    keeps, per class, the thumbnails of the `per_class` images whose file names have the smallest
    sha256; at most `MAX_CLASSES` classes, the first in index order.

    `later`: keep the chosen images' bytes and make their thumbnails only when the sheet is drawn
    (resized members: the build's own JPEGs, which decode, and at 160 px are smaller than their
    thumbnail's pixels). An image is chosen, then pushed out by one of a smaller key, about
    per_class * (1 + ln(n / per_class)) times in a class of n images: for 1,300 images a class,
    33 thumbnails made where 5 are kept. Thumbnails are resized with the numpy passes
    (`resample.engine_for`): this is the building process, which never loads numba."""

    def __init__(self, classes: list[tuple[str, str]], per_class: int = CARD_PER_CLASS, thumb: int = CARD_THUMB,
                 later: bool = False):
        """`classes`: (wnid, name) in index order."""
        self.rows = {w: Row(f"{name}\n{w}", per_class, thumb) for w, name in classes[:MAX_CLASSES]}
        self.thumb = thumb
        self.later = later

    def add(self, wnid: str, member: str, data: bytes) -> None:
        row = self.rows.get(wnid)
        if row is None:
            return
        k = key(member.rpartition("/")[2])
        if row.wants(k):
            t = bytes(data) if self.later else self._thumbnail(data)
            if t is not None:
                row.add(k, t)

    def _thumbnail(self, data: bytes) -> Image.Image | None:
        with resample.engine_for("numpy"):
            return stable_thumbnail(data, self.thumb)

    def png(self) -> bytes:
        rows = list(self.rows.values())
        for row in rows:  # (the thumbnails of kept bytes, made now)
            row.chosen = [(k, self._thumbnail(t) if isinstance(t, bytes) else t) for k, t in row.chosen]
            row.chosen = [(k, t) for k, t in row.chosen if t is not None]
        return png_of_bands(*_size(rows), _bands(rows))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(img: Image.Image) -> bytes:
    """An RGB image as PNG bytes that depend on its pixels and the deflate library alone: each row
    filtered with Sub (the difference to the pixel on its left), deflated by ISA-L."""
    rgb = img if img.mode == "RGB" else img.convert("RGB")
    w, h = rgb.size
    return png_of_bands(w, h, (rgb.crop((0, top, w, min(h, top + _BAND))) for top in range(0, h, _BAND)))


def png_of_bands(width: int, height: int, bands: Iterable[Image.Image]) -> bytes:
    """`png` of the image made of `bands` (RGB, `width` wide, `height` tall together) stacked from
    the top. The filtered rows are made a band at a time into the one buffer deflated: no copy of
    the whole image besides it (a sheet of 200 classes is ~45 MB of pixels)."""
    from isal import isal_zlib

    rows = np.empty((height, 1 + 3 * width), np.uint8)
    rows[:, 0] = 1  # filter byte 1: Sub
    top = 0
    for band in bands:
        pixels = np.asarray(band, dtype=np.uint8)
        if band.mode != "RGB" or band.width != width or top + band.height > height:
            raise ValueError(f"a band of {band.mode} {band.size} does not fit a {width} x {height} RGB image at row {top}")
        out = rows[top:top + band.height, 1:].reshape(band.height, width, 3)
        out[:, 0] = pixels[:, 0]
        np.subtract(pixels[:, 1:], pixels[:, :-1], out=out[:, 1:])  # (uint8: modulo 256, as PNG's Sub filter)
        top += band.height
    if top != height:
        raise ValueError(f"bands of {top} rows for a {height}-row image")
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) +
            _chunk(b"IDAT", isal_zlib.compress(memoryview(rows).cast("B"), 3)) + _chunk(b"IEND", b""))


_BAND = 256  # image rows filtered at a time
