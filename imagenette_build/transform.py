"""Decode, resize, encode: one source image in, one JPEG per requested size out.

The default `Recipe` is the published one, `fastai-2018`: the recipe that made the published
160/320 px Imagenette and Imagewoof images, established by regenerating published members byte for
byte (README "Byte-identical to the published archives"). It is fast.ai's 2018 resize script run
under pillow-simd with libjpeg-turbo: a full decode; the colour mode kept (grayscale stays
grayscale; CMYK, palette, alpha and the rest become RGB); EXIF orientation left as stored;
`ratio = min(h / S, w / S)` and size `(int(w / ratio), int(h / ratio))` in float arithmetic
(`target_size`); small images enlarged; BICUBIC as pillow-simd computes it (`resample` where
pillow-simd is not the installed PIL); Pillow's JPEG defaults at quality 75 and no metadata
segment written. Size `None` ("full") is the source's bytes untouched.

Opt-ins, each recorded in the build report as not the published recipe: another filter, quality
or rounding of the long side, and `decode="scaled"`, which lets libjpeg decode at 1/2 scale (DCT
scaling, `Image.draft`) where the decoded image stays at least twice the target on both sides
(faster, pixels differ slightly). Sizes that allow the same DCT scale share one decode; every size
gets exactly the pixels it would get if built alone.

Pure functions of bytes and a recipe: reading files, the cache and processes are `worker.py`'s.

Bad input (docs/faults.md, "Bad source images"): a file that cannot be read, is empty, is not an
image, is truncated (a JPEG without its end-of-image marker, a PNG without IEND), declares more
than MAX_DECODE_PIXELS (a decompression bomb) or would resize to more than a resized image may be
(`output_problem`: a thin image enlarged) is an error for that image; the caller stops the build
or, with --skip-broken, leaves the image out. The pixel bounds (limits.py) are checked against the
header, before anything is decoded, and `verify` applies the same ones to members.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

from PIL import Image

from . import resample
from .limits import (MAX_DECODE_PIXELS, MAX_HEADER_READS, MAX_JPEG_SCANS, MAX_MEMBER_BYTES, MAX_OUTPUT_PIXELS,
                     MAX_OUTPUT_SIDE)
from .toolchain import resampler_is_native

FILTERS = {
    "nearest": Image.NEAREST,
    "box": Image.BOX,
    "bilinear": Image.BILINEAR,
    "hamming": Image.HAMMING,
    "bicubic": Image.BICUBIC,
    "lanczos": Image.LANCZOS,
}
ROUNDINGS = ("script", "floor", "round", "ceil")  # script: fast.ai's float arithmetic
DECODES = ("full", "scaled")
DRAFT_MARGIN = 2  # a DCT-scaled decode must stay at least this many times the target size
DRAFT_MAX_SCALE = 2  # and is never smaller than 1/2 of the source (module docstring)
MODES_KEPT = ("RGB", "L")
# The formats opened (by content, whatever the name): ImageNet's JPEGs (and its odd PNG and CMYK
# JPEG), and the raster formats docs/faults.md names. Any other is refused unopened: EPS runs
# Ghostscript on the file (a PostScript loop hangs the build, or verify on a downloaded archive),
# and the rest only add decoders to attack.
FORMATS = ("JPEG", "PNG", "GIF", "TIFF", "BMP", "PCX", "TGA")
JPEG_SOS, JPEG_EOI = b"\xff\xda", b"\xff\xd9"


PUBLISHED_RECIPE_NAME = "fastai-2018"


@dataclass(frozen=True)
class Recipe:
    """How a resized image is made. The defaults are the published recipe (`fastai-2018`)."""

    filter: str = "bicubic"
    quality: int = 75
    rounding: str = "script"  # how the long side is computed (`target_size`)
    decode: str = "full"

    def __post_init__(self):
        if self.filter not in FILTERS:
            raise ValueError(f"unknown filter {self.filter!r}")
        if self.rounding not in ROUNDINGS:
            raise ValueError(f"unknown rounding {self.rounding!r}")
        if self.decode not in DECODES:
            raise ValueError(f"unknown decode {self.decode!r}")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"quality {self.quality} is not in 1..100")

    @property
    def published(self) -> bool:
        """Is this the recipe of the published 160/320 px archives?"""
        return self == Recipe()

    @property
    def name(self) -> str:
        return PUBLISHED_RECIPE_NAME if self.published else "custom"

    def to_json(self) -> dict:
        return {**asdict(self), "name": self.name, "published": self.published}

    @classmethod
    def from_json(cls, data: dict) -> Recipe:
        """The recipe of a build report (`to_json`; older reports lack `name` and `published`)."""
        return cls(**{k: v for k, v in data.items() if k not in ("name", "published")})


def target_size(width: int, height: int, size: int, rounding: str = "script") -> tuple[int, int]:
    """Shortest side exactly `size`, the other side scaled by the same ratio.

    `script` is fast.ai's 2018 resize script, in its float arithmetic: `ratio = min(h / S, w / S)`,
    long side `int(long / ratio)` (the published images follow it). For S = 160 and 320 its short
    side is always S; for some other S its float division gives S - 1 for a few shapes (224: 9 px
    wide, among others), and there the short side is S all the same, as the tool promises.
    floor, round, ceil: the long side is `long * S / short` rounded so, in integer arithmetic."""
    short, long = (width, height) if width <= height else (height, width)
    if rounding == "script":
        ratio = min(height / size, width / size)
        new_long = int(long / ratio)
    else:
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
    """The DCT reduction (1 or DRAFT_MAX_SCALE) that keeps DRAFT_MARGIN x target; given to `draft`,
    which picks it."""
    req_w, req_h = target[0] * DRAFT_MARGIN, target[1] * DRAFT_MARGIN
    scale = min(width // req_w, height // req_h, DRAFT_MAX_SCALE)
    return next((s for s in (8, 4, 2) if scale >= s), 1)


class TooLarge(ValueError):
    """An image larger than the tool writes (`output_problem`, MAX_MEMBER_BYTES)."""


def output_problem(width: int, height: int) -> str | None:
    """Why a resized image of `width` x `height` px cannot be written, or None: a side longer than
    JPEG allows, or more pixels than MAX_OUTPUT_PIXELS. The one bound of what the build makes and of
    the members of a sized archive that verify decodes."""
    if max(width, height) > MAX_OUTPUT_SIDE:
        return f"more than {MAX_OUTPUT_SIDE:,} px a side (JPEG's limit)"
    if width * height > MAX_OUTPUT_PIXELS:
        return f"{width * height:,} px, more than a resized image may have ({MAX_OUTPUT_PIXELS:,})"
    return None


class _Counted(io.BytesIO):
    """An image's bytes, of which Image.open (the header's parse) may make MAX_HEADER_READS reads;
    `budget` None (the decode): any number."""

    def __init__(self, data: bytes):
        super().__init__(data)
        self.budget: int | None = MAX_HEADER_READS

    def read(self, size: int | None = -1) -> bytes:
        if self.budget is not None:
            self.budget -= 1
            if self.budget < 0:
                raise ValueError(f"a header of more than {MAX_HEADER_READS:,} segments, chunks or blocks before the "
                                 "image data (an image's has a few dozen)")
        return super().read(size)


def open_image(data: bytes) -> Image.Image:
    """The image with only its header read, if it is in one of FORMATS and its header is at most
    MAX_HEADER_READS pieces. More than MAX_DECODE_PIXELS is refused as a decompression bomb whatever
    PIL's Image.MAX_IMAGE_PIXELS is set to (between MAX_IMAGE_PIXELS and that: no warning)."""
    fp = _Counted(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        img = Image.open(fp, formats=FORMATS)
    fp.budget = None
    pixels = img.size[0] * img.size[1]
    if pixels > MAX_DECODE_PIXELS:
        raise Image.DecompressionBombError(f"Image size ({pixels} pixels) exceeds limit of {MAX_DECODE_PIXELS} "
                                           "pixels, could be decompression bomb DOS attack.")
    if img.info.get("progressive"):  # (a sequential JPEG that repeats a scan is refused by libjpeg)
        scans = data.count(JPEG_SOS)  # entropy-coded data cannot hold the marker
        if scans > MAX_JPEG_SCANS:
            raise ValueError(f"a progressive JPEG of {scans:,} scans, more than the {MAX_JPEG_SCANS} decoded "
                             "(each is a pass over the whole image)")
    return img


def load_pixels(data: bytes, size: int | None = None) -> Image.Image:
    """Every pixel decoded, as stored (a truncated or corrupt JPEG fails here, not at `open`):
    what `verify` checks a member with. A member of an archive at `size` (None: full size) larger
    than the build writes at a size (`output_problem`) is refused from its header: TooLarge."""
    img = open_image(data)
    problem = output_problem(*img.size) if size is not None else None
    if problem:
        raise TooLarge(f"{img.size[0]} x {img.size[1]} px: {problem}")
    img.load()
    return img


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


def encode(img: Image.Image, quality: int) -> bytes:
    """Pillow's JPEG defaults at `quality`, and nothing of the source's metadata: Pillow 9.4 and
    later write a source's COM comment back from `img.info` (the published images have none), so
    `info` is empty while saving, whatever a Pillow version might carry over from it."""
    problem = output_problem(*img.size)
    if problem:  # libjpeg would print its own refusal on stderr before failing
        raise TooLarge(f"{img.size[0]} x {img.size[1]} px: {problem}")
    buf = io.BytesIO()
    info, img.info = img.info, {}
    try:
        img.save(buf, format="JPEG", quality=quality)
    finally:
        img.info = info
    return buf.getvalue()


def resize(img: Image.Image, size: tuple[int, int], filter: str, box: tuple | None = None) -> Image.Image:
    """`img` resized with pillow-simd's arithmetic: pillow-simd's own where it is the installed
    PIL, else the same integer arithmetic computed here (`resample`), so that one recipe gives the
    same bytes on any Pillow."""
    if resampler_is_native():
        return img.resize(size, FILTERS[filter], box=box)
    return resample.resize(img, size, FILTERS[filter], box=box)


def _decode_at(img: Image.Image, width: int, height: int, scale: int) -> tuple[Image.Image, tuple | None]:
    """`img` (just opened, `width` x `height`) decoded at 1/`scale` and in a kept mode, and the box
    of the decoded image that covers the source (None: all of it)."""
    box = None
    if scale > 1:
        _, box = img.draft(img.mode, (width // scale, height // scale))
    img.load()
    return _normalise_mode(img), box


def checked_targets(width: int, height: int, sizes: tuple[int, ...], rounding: str = "script") -> dict:
    """{size: target size} of a `width` x `height` image; TooLarge, naming the image's and the
    target's size, where a target is larger than a resized image may be (`output_problem`)."""
    targets = {s: target_size(width, height, s, rounding) for s in sizes}
    for s, (w, h) in targets.items():
        problem = output_problem(w, h)
        if problem:
            raise TooLarge(f"{width} x {height} px would be {w} x {h} at --size {s}: {problem}")
    return targets


def _targets_and_scales(probe: Image.Image, sizes: tuple[int, ...], recipe: Recipe) -> tuple[dict, dict]:
    """For each of `sizes`: the target size (checked, before any decode), and the DCT scale to
    decode `probe` (just opened) at."""
    width, height = probe.size
    targets = checked_targets(width, height, sizes, recipe.rounding)
    scaled = recipe.decode == "scaled" and probe.format == "JPEG"
    return targets, {s: (dct_scale(width, height, t) if scaled else 1) for s, t in targets.items()}


def decode_for(data: bytes, size: int, recipe: Recipe = Recipe()) -> tuple[Image.Image, tuple | None, tuple[int, int]]:
    """The image as `resize_pixels` decodes it for `size`, the box to resize from, and the target
    size: the decode alone (the benchmark's floor and its per-image budget time it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        probe = open_image(data)
        targets, scales = _targets_and_scales(probe, (size,), recipe)
        img, box = _decode_at(probe, *probe.size, scales[size])
    return img, box, targets[size]


def _resized(data: bytes, sizes: tuple[int, ...], recipe: Recipe) -> Iterator[tuple[int, Image.Image]]:
    """(size, resized image) for each of `sizes`, decoding once per distinct DCT scale (usually
    one); every target checked before the first decode."""
    probe = open_image(data)
    width, height = probe.size
    targets, scales = _targets_and_scales(probe, sizes, recipe)
    for n, scale in enumerate(sorted(set(scales.values()))):
        source, probe = (probe if n == 0 else open_image(data)), None
        img, box = _decode_at(source, width, height, scale)
        del source  # a CMYK or palette image's own pixels are not held beside its RGB copy
        for s in sizes:
            if scales[s] == scale:
                yield s, resize(img, targets[s], recipe.filter, box)


def resize_pixels(data: bytes, sizes: tuple[int, ...], recipe: Recipe) -> dict[int, Image.Image]:
    """The resized images (before JPEG encoding) for each of `sizes`."""
    return dict(_resized(data, sizes, recipe))


def make_jpegs(data: bytes, sizes: tuple[int, ...], recipe: Recipe,
               seen: Callable[[int, Image.Image], None] | None = None) -> list[bytes]:
    """JPEG bytes for each of `sizes` (pixel sizes only), each encoded as soon as it is resized (one
    resized image held at a time); `seen(size, image)` is shown each resized image first. A JPEG
    larger than an archive member may be (verify reads no more) is TooLarge."""
    out = {}
    for s, img in _resized(data, sizes, recipe):
        if seen is not None:
            seen(s, img)
        out[s] = encode(img, recipe.quality)
        if len(out[s]) > MAX_MEMBER_BYTES:
            raise TooLarge(f"its {img.size[0]} x {img.size[1]} px JPEG at --size {s} is {len(out[s]):,} bytes, more "
                           f"than an archive member may have ({MAX_MEMBER_BYTES:,})")
        del img
    return [out[s] for s in sizes]


def check_full_size(data: bytes) -> None:
    """The cheap check for full-size copies, which are not decoded: the bytes open as an image and
    are not cut short. A JPEG must have its end-of-image marker after the start of its last scan
    (neither marker can occur inside entropy-coded data), a PNG its IEND chunk: exactly the files
    Pillow would refuse as truncated. Any other format (GIF, TIFF, BMP, PCX, TGA, ... named .JPEG:
    rare in ImageNet) is decoded, as a resize would, so both refuse the same files. A
    decompression bomb is refused as in a resize, and a file larger than an archive member may be
    (verify reads no more; a resize of it is fine)."""
    if not data:
        raise ValueError("empty file (0 bytes)")
    if len(data) > MAX_MEMBER_BYTES:
        raise TooLarge(f"{len(data):,} bytes, more than an archive member may have ({MAX_MEMBER_BYTES:,})")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        img = open_image(data)
        fmt = img.format
        if fmt not in ("JPEG", "PNG"):
            img.load()
    if fmt == "JPEG":
        # "an EOI after the last SOS" is "an EOI, and no SOS after the last one": searched from the
        # end, this reads a few bytes, where searching the scans for SOS reads the whole file (most
        # of a full-size copy's time).
        eoi = data.rfind(JPEG_EOI)
        if eoi < 0 or data.find(JPEG_SOS, eoi + 2) >= 0 or data.find(JPEG_SOS, 0, eoi) < 0:
            raise ValueError("truncated JPEG (no end-of-image marker after the last scan)")
    elif fmt == "PNG" and data.rfind(b"IEND") < 0:
        raise ValueError("truncated PNG (no IEND chunk)")


def describe_error(exc: BaseException, data: bytes | None = None) -> str:
    """What is wrong with an image, in a few words on one line, from the exception reading it raised
    (and its bytes, when they were read)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    if isinstance(exc, Image.DecompressionBombError):
        return f"refused as a decompression bomb ({exc})"
    if data is not None and not data:
        return "empty file (0 bytes)"
    if isinstance(exc, Image.UnidentifiedImageError):
        return (f"not an image in a format read here: {', '.join(FORMATS)}"
                + (f" (starts with {data[:8].hex(' ')})" if data else ""))
    text = str(exc) or type(exc).__name__
    return text.replace("\n", " ")
