"""The per-image work, run in worker processes: decode a member, and with its source regenerate it
(the build's recipe, through `transform`, as the build does) and compare, byte for byte and by
PSNR; on sampled members, against every recipe of the sweep too. Plain data in and out, so a
batch pickles to any worker."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..sources import SourceRef
from ..transform import Recipe, TooLarge, describe_error, encode, load_pixels, make_jpegs, resize_pixels


@dataclass(frozen=True)
class CheckSpec:
    """What each worker checks; plain data, so it pickles to any worker process."""

    size: int | None  # None: full size
    recipe: Recipe  # the build's, for regenerating sized members
    grid: tuple[Recipe, ...] = ()  # tried on sampled members


@dataclass(frozen=True)
class SourceMatch:
    identical: bool  # the member's bytes equal the source's (full) or the regeneration's (sized)
    psnr: float  # dB; inf for identical pixels, 0 for a different geometry
    max_diff: int
    note: str = ""


@dataclass(frozen=True)
class MemberCheck:
    """What a worker found about one member: does it decode, its geometry, and how it compares
    with its source (and, when sampled, with every recipe of the sweep)."""

    member: str
    error: str | None = None  # the member does not decode
    too_large: bool = False  # the error: its header declares more pixels than the build writes; not decoded
    width: int = 0
    height: int = 0
    mode: str = ""
    source: SourceMatch | None = None
    source_error: str | None = None  # the source could not be read or regenerated
    sweep: tuple[float, ...] | None = None  # PSNR per CheckSpec.grid recipe


BAND_VALUES = 1 << 18  # pixel_difference works through the images a band of rows of about this many values


def pixel_difference(a: Image.Image, b: Image.Image) -> tuple[float, int, str]:
    """(PSNR in dB, max abs difference, note). A different geometry is PSNR 0: not the same image.
    In bands of rows: whole int16 and float64 copies took 3.6 GB for a 10922 x 8192 member. The
    squares are summed exactly, in integers."""
    if a.size != b.size:
        return 0.0, 255, f"{a.size[0]}x{a.size[1]} vs {b.size[0]}x{b.size[1]}"
    note = "" if a.mode == b.mode else f"mode {a.mode} vs {b.mode}"
    mode = a.mode if a.mode == b.mode and a.mode in ("L", "RGB") else "RGB"
    a, b = (im if im.mode == mode else im.convert(mode) for im in (a, b))
    width, height = a.size
    rows = max(1, BAND_VALUES // (width * len(mode)))
    squares = values = peak = 0
    for top in range(0, height, rows):
        box = (0, top, width, min(top + rows, height))
        diff = np.abs(np.asarray(a.crop(box), dtype=np.int16) - np.asarray(b.crop(box), dtype=np.int16))
        squares += int(np.square(diff, dtype=np.int32).sum(dtype=np.int64))  # 255 ** 2 fits an int32
        values += diff.size
        peak = max(peak, int(diff.max()))
    mse = squares / values
    psnr = math.inf if mse == 0 else 10 * math.log10(255 ** 2 / mse)
    return psnr, peak, note


def _compare_with_source(member: Image.Image, data: bytes, src: bytes, spec: CheckSpec) -> SourceMatch:
    expected = src if spec.size is None else make_jpegs(src, (spec.size,), spec.recipe)[0]
    if expected == data:
        return SourceMatch(True, math.inf, 0)
    psnr, max_diff, note = pixel_difference(member, load_pixels(expected))
    return SourceMatch(False, psnr, max_diff, note)


def _sweep(member: Image.Image, src: bytes, spec: CheckSpec) -> tuple[float, ...]:
    """PSNR of the member against each grid recipe's output (0 where the recipe cannot make it); one
    resize per filter and rounding, shared by every quality, and only one held at a time (24 of them at
    --size 8192: 6 GB)."""
    out: list[float] = [0.0] * len(spec.grid)
    keys = {}  # (filter, rounding, decode): the indices of its recipes, in grid order
    for i, recipe in enumerate(spec.grid):
        keys.setdefault((recipe.filter, recipe.rounding, recipe.decode), []).append(i)
    for indices in keys.values():
        try:
            resized = resize_pixels(src, (spec.size,), spec.grid[indices[0]])[spec.size]
        except TooLarge:  # a recipe that cannot make the image (ceil's long side over the bound) is not its recipe
            continue  # 0 dB, as for another geometry
        for i in indices:
            out[i] = pixel_difference(member, load_pixels(encode(resized, spec.grid[i].quality)))[0]
        del resized
    return tuple(out)


def check_member(member: str, data: bytes, ref: SourceRef | None, sampled: bool, spec: CheckSpec) -> MemberCheck:
    try:
        img = load_pixels(data, spec.size)  # the build's bounds, from the header (transform.output_problem)
    except (TooLarge, Image.DecompressionBombError) as exc:
        return MemberCheck(member, error=describe_error(exc), too_large=True)
    except Exception as exc:  # any decoder failure is a property of the member
        return MemberCheck(member, error=describe_error(exc))
    base = dict(member=member, width=img.size[0], height=img.size[1], mode=img.mode)
    if ref is None:
        return MemberCheck(**base)
    try:
        src = ref.read()
        match = _compare_with_source(img, data, src, spec)
        sweep = _sweep(img, src, spec) if sampled and spec.grid and spec.size is not None else None
    except Exception as exc:  # an unreadable source or a failed regeneration: named, never raised
        return MemberCheck(**base, source_error=f"{ref}: {describe_error(exc)}")
    return MemberCheck(**base, source=match, sweep=sweep)


def check_batch(items: list[tuple[str, bytes, SourceRef | None, bool]], spec: CheckSpec) -> list[MemberCheck]:
    """The worker task: one result per (member, bytes, source ref, sampled) item, in order."""
    return [check_member(*item, spec) for item in items]
