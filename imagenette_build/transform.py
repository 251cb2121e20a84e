"""Decode, resize, encode: one source image in, one JPEG per requested size out.

The default `Recipe` is the likeliest recipe of the published 160/320 px archives (fast.ai's 2018
resize script): shortest side to S, long side `int(long * S / short)` (truncated), BICUBIC, JPEG
quality 75, colour mode kept (grayscale stays grayscale; CMYK, palette, alpha and the rest become
RGB), small images enlarged, EXIF orientation left as stored. Size `None` ("full") is the source's
bytes untouched.

`decode="scaled"` lets libjpeg decode at 1/2, 1/4 or 1/8 scale (DCT scaling, `Image.draft`) only
where the decoded image stays at least twice the target on both sides; this changes pixels slightly
(README "Speed"), and `decode="full"` turns it off for exact output. Sizes that allow the same DCT
scale share one decode; every size gets exactly the pixels it would get if built alone.

Workers get plain data (`SourceRef`s, sizes, a `Recipe`) and return plain data (bytes or an error
string), so this runs in any process or on any machine.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import asdict, dataclass

from PIL import Image

from .sources import SourceRef

FILTERS = {
    "nearest": Image.NEAREST,
    "box": Image.BOX,
    "bilinear": Image.BILINEAR,
    "hamming": Image.HAMMING,
    "bicubic": Image.BICUBIC,
    "lanczos": Image.LANCZOS,
}
ROUNDINGS = ("floor", "round", "ceil")
DECODES = ("scaled", "full")
DRAFT_MARGIN = 2  # a DCT-scaled decode must stay at least this many times the target size
MODES_KEPT = ("RGB", "L")


@dataclass(frozen=True)
class Recipe:
    filter: str = "bicubic"
    quality: int = 75
    rounding: str = "floor"
    decode: str = "scaled"

    def __post_init__(self):
        if self.filter not in FILTERS:
            raise ValueError(f"unknown filter {self.filter!r}")
        if self.rounding not in ROUNDINGS:
            raise ValueError(f"unknown rounding {self.rounding!r}")
        if self.decode not in DECODES:
            raise ValueError(f"unknown decode {self.decode!r}")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"quality {self.quality} is not in 1..100")

    def to_json(self) -> dict:
        return asdict(self)


def target_size(width: int, height: int, size: int, rounding: str = "floor") -> tuple[int, int]:
    """Shortest side exactly `size`, the other side scaled by the same ratio, in integer arithmetic
    (no float error can make a side 159 instead of 160)."""
    short, long = (width, height) if width <= height else (height, width)
    num = long * size
    if rounding == "floor":
        new_long = num // short
    elif rounding == "round":  # half up
        new_long = (2 * num + short) // (2 * short)
    elif rounding == "ceil":
        new_long = -(-num // short)
    else:
        raise ValueError(f"unknown rounding {rounding!r}")
    new_long = max(new_long, size)
    return (size, new_long) if width <= height else (new_long, size)


def dct_scale(width: int, height: int, target: tuple[int, int]) -> int:
    """The reduction (1, 2, 4 or 8) Pillow's `draft` picks when asked for DRAFT_MARGIN x target."""
    req_w, req_h = target[0] * DRAFT_MARGIN, target[1] * DRAFT_MARGIN
    scale = min(width // req_w, height // req_h)
    return next((s for s in (8, 4, 2) if scale >= s), 1)


def _open(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def _normalise_mode(img: Image.Image) -> Image.Image:
    """Grayscale stays grayscale; everything else becomes RGB."""
    if img.mode in MODES_KEPT:
        return img
    if img.mode == "1":
        return img.convert("L")
    if img.mode.startswith("I;16") or img.mode == "I":
        # 16-bit grayscale: keep the high byte (a plain convert("L") would clip nearly all to white).
        as_int = img if img.mode == "I" else img.convert("I")
        return as_int.point(lambda v: v / 256).convert("L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    return img.convert("RGB")


def _encode(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def resized_images(data: bytes, sizes: tuple[int, ...], recipe: Recipe) -> dict[int, Image.Image]:
    """The resized images (before JPEG encoding) for each of `sizes`, decoding once per distinct
    DCT scale."""
    with warnings.catch_warnings():
        # A large image is fine here; only a real decompression bomb (error) is refused.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        probe = _open(data)
        width, height = probe.size
        targets = {s: target_size(width, height, s, recipe.rounding) for s in sizes}
        scaled = recipe.decode == "scaled" and probe.format == "JPEG"
        scales = {s: (dct_scale(width, height, t) if scaled else 1) for s, t in targets.items()}
        out: dict[int, Image.Image] = {}
        for scale in sorted(set(scales.values())):
            img = probe if not out else _open(data)  # one decode per distinct scale, usually one
            box = None
            if scale > 1:
                _, box = img.draft(img.mode, (width // scale, height // scale))
            img.load()
            img = _normalise_mode(img)
            for s in sizes:
                if scales[s] == scale:
                    out[s] = img.resize(targets[s], FILTERS[recipe.filter], box=box)
    return out


def resize_image(data: bytes, sizes: tuple[int, ...], recipe: Recipe) -> list[bytes]:
    """JPEG bytes for each of `sizes` (pixel sizes only)."""
    images = resized_images(data, sizes, recipe)
    return [_encode(images[s], recipe.quality) for s in sizes]


def check_header(data: bytes) -> None:
    """The cheap check for full-size copies: the bytes must open as an image."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        _open(data)


def process_batch(refs: list[SourceRef], sizes: tuple[int | None, ...], recipe: Recipe) -> list:
    """The worker task: for each ref, (outputs per size, None) or (None, error message).

    A bad image never raises here: the caller decides whether the build stops or skips it.
    """
    pixel_sizes = tuple(s for s in sizes if s is not None)
    results = []
    for ref in refs:
        try:
            data = ref.read()
            resized = iter(resize_image(data, pixel_sizes, recipe)) if pixel_sizes else None
            if not pixel_sizes:
                check_header(data)
            results.append((tuple(data if s is None else next(resized) for s in sizes), None))
        except Exception as exc:  # any decoder failure is a property of the input file
            results.append((None, f"{ref}: {_describe(exc)}"))
    return results


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    if isinstance(exc, Image.UnidentifiedImageError):
        return "not an image Pillow can read"
    if isinstance(exc, Image.DecompressionBombError):
        return f"refused as a decompression bomb ({exc})"
    text = str(exc) or type(exc).__name__
    return text.replace("\n", " ")
