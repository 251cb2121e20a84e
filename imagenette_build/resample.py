"""pillow-simd's resampling, computed here: the same pixels on any Pillow.

The published Imagenette images were resized by pillow-simd. Its convolution differs from stock
Pillow's in one thing, the integer arithmetic: pillow-simd rounds each pass's coefficients to
int16, scaled by the largest power of two that keeps the biggest one below 2**15 (at most 2**22;
`normalize_coeffs_8bpc` in pillow-simd's `src/libImaging/Resample.c`), where stock Pillow uses
int32 coefficients at a fixed 2**22. The results differ by 1 (at most 2) in a few thousand channel
values an image, so stock Pillow cannot give the published bytes.

This module is that arithmetic, written again: the coefficients in float64 in the C code's order
of operations (IEEE-754 makes them bit for bit the same), then two integer passes, horizontal
first, each rounding to 8 bits (`v = (2**(p-1) + sum(pixel * coef)) >> p`, clipped to 0..255)
exactly as pillow-simd's SSE4/AVX2 and scalar loops do. `resize(img, size, filter, box)` stands in
for `img.resize(size, filter, box)` of pillow-simd for modes L and RGB (and any 8-bit mode whose
channels are resampled independently); `tests/unit/test_resample.py` checks it against pillow-simd pixel
for pixel where pillow-simd is installed.

The passes run as numba-compiled loops (compiled once per process, cached on disk), or, where
numba cannot be imported, as vectorised numpy (same bytes, several times slower).
NEAREST is not a convolution: Pillow and pillow-simd share its code, so Pillow's own is used.
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache

import numpy as np
from PIL import Image

from . import settings

# (filter function on a float64 array, support), as in Resample.c
_PI = math.pi
_HAMMING_A = float(np.float32(0.54))  # C: `0.54f + 0.46f * cos(x)`, float literals promoted to double
_HAMMING_B = float(np.float32(0.46))


def _box(x: np.ndarray) -> np.ndarray:
    return ((x > -0.5) & (x <= 0.5)).astype(np.float64)


def _bilinear(x: np.ndarray) -> np.ndarray:
    x = np.abs(x)
    return np.where(x < 1.0, 1.0 - x, 0.0)


def _bicubic(x: np.ndarray) -> np.ndarray:
    # a = -0.5, written as the C macro expands: ((a + 2.0) * x - (a + 3.0)) * x * x + 1 and
    # (((x - 5) * x + 8) * x - 4) * a, evaluated left to right
    x = np.abs(x)
    inner = ((-0.5 + 2.0) * x - (-0.5 + 3.0)) * x * x + 1
    outer = (((x - 5) * x + 8) * x - 4) * -0.5
    return np.where(x < 1.0, inner, np.where(x < 2.0, outer, 0.0))


def _scalar(fn):
    """A filter that needs sin/cos: evaluated with the C library's, one value at a time (numpy's
    vectorised sin may differ from libm in the last bit, and the coefficients must not)."""
    def apply(x: np.ndarray) -> np.ndarray:
        return np.array([fn(float(v)) for v in x.ravel()], dtype=np.float64).reshape(x.shape)
    return apply


def _hamming1(x: float) -> float:
    if x < 0.0:
        x = -x
    if x == 0.0:
        return 1.0
    if x >= 1.0:
        return 0.0
    x = x * _PI
    return math.sin(x) / x * (_HAMMING_A + _HAMMING_B * math.cos(x))


def _sinc(x: float) -> float:
    if x == 0.0:
        return 1.0
    x = x * _PI
    return math.sin(x) / x


def _lanczos1(x: float) -> float:
    if -3.0 <= x < 3.0:
        return _sinc(x) * _sinc(x / 3)
    return 0.0


FILTERS = {
    Image.Resampling.BOX: (_box, 0.5),
    Image.Resampling.BILINEAR: (_bilinear, 1.0),
    Image.Resampling.HAMMING: (_scalar(_hamming1), 1.0),
    Image.Resampling.BICUBIC: (_bicubic, 2.0),
    Image.Resampling.LANCZOS: (_scalar(_lanczos1), 3.0),
}
PRECISION_BITS = 32 - 8 - 2
MAX_COEFS_PRECISION = 16 - 1


class Coefficients:
    """One pass: for output index i, source indices start[i] .. start[i] + count[i] - 1 weighted
    by taps[i, :count[i]] (int16), and the pass's precision p."""

    __slots__ = ("start", "count", "taps", "precision")

    def __init__(self, start: np.ndarray, count: np.ndarray, taps: np.ndarray, precision: int):
        self.start, self.count, self.taps, self.precision = start, count, taps, precision


@lru_cache(maxsize=256)
def coefficients(in_size: int, in0: float, in1: float, out_size: int, filter: int) -> Coefficients:
    """`precompute_coeffs` then `normalize_coeffs_8bpc` of pillow-simd's Resample.c. Cached: most
    photos share a few sizes (the result is never modified)."""
    fn, filter_support = FILTERS[filter]
    # box coordinates are C floats: `(double)(in1 - in0)` is a float subtraction
    in0_f, in1_f = np.float32(in0), np.float32(in1)
    scale = float(np.float32(in1_f - in0_f)) / out_size
    filterscale = max(scale, 1.0)
    support = filter_support * filterscale
    ksize = int(math.ceil(support)) * 2 + 1
    ss = 1.0 / filterscale
    center = float(in0_f) + (np.arange(out_size, dtype=np.float64) + 0.5) * scale
    start = np.trunc(center - support + 0.5).astype(np.int64)  # C's (int): toward zero
    start[start < 0] = 0
    stop = np.trunc(center + support + 0.5).astype(np.int64)
    stop[stop > in_size] = in_size
    count = stop - start
    x = np.arange(ksize, dtype=np.int64)
    used = x[None, :] < count[:, None]
    w = fn(((x[None, :] + start[:, None]).astype(np.float64) - center[:, None] + 0.5) * ss)
    w = np.where(used, w, 0.0)
    # ww is summed left to right, as the C loop does (np.sum would pair terms differently)
    ww = np.cumsum(w, axis=1)[:, -1]
    safe = np.where(ww != 0.0, ww, 1.0)
    k = np.where(used, w / safe[:, None], 0.0)

    maxkk = float(k.max()) if k.size else 0.0
    precision = 0
    while precision < PRECISION_BITS:
        if int(0.5 + maxkk * (1 << (precision + 1))) >= (1 << MAX_COEFS_PRECISION):
            break
        precision += 1
    scaled = k * float(1 << precision)
    taps = np.trunc(np.where(k < 0, scaled - 0.5, scaled + 0.5)).astype(np.int16)
    return Coefficients(start.astype(np.int32), count.astype(np.int32), taps, precision)


# ---------------------------------------------------------------------------- the passes
#
# Pixels are handled as 2-D uint8 arrays of rows: (height, width * bpp), with bpp 4 for RGB (Pillow
# stores RGB as RGBX; the fourth byte is resampled too and dropped at the end, as pillow-simd does)
# and 1 for L. Both passes are the same kernel, `rows_pass`, which makes each output row from a few
# whole input rows, so its inner loop runs along a contiguous row: the horizontal pass runs it on
# the transposed image (a tile of rows at a time) and transposes back.


def _rows_pass_numpy(src: np.ndarray, c: Coefficients, first: int) -> np.ndarray:
    last = src.shape[0] - 1
    acc = np.full((len(c.count), src.shape[1]), 1 << (c.precision - 1), dtype=np.int32)
    for t in range(c.taps.shape[1]):
        rows = np.minimum(c.start - first + t, last)  # taps past count are 0: any row will do
        acc += src[rows].astype(np.int32) * c.taps[:, t][:, None]
    acc >>= c.precision
    return np.clip(acc, 0, 255).astype(np.uint8)


def _transpose_numpy(src: np.ndarray, bpp: int) -> np.ndarray:
    elements = src.view(np.uint32) if bpp == 4 else src
    return np.ascontiguousarray(elements.T).view(np.uint8)


class _Numpy:
    name = "numpy"

    @staticmethod
    def horizontal(src: np.ndarray, bpp: int, c: Coefficients, first: int, rows: int) -> np.ndarray:
        columns = _transpose_numpy(src[first:first + rows], bpp)  # (in_w, rows * bpp)
        return _transpose_numpy(_rows_pass_numpy(columns, c, 0), bpp)  # (rows, out_w * bpp)

    @staticmethod
    def vertical(src: np.ndarray, c: Coefficients, first: int) -> np.ndarray:
        return _rows_pass_numpy(src, c, first)


class _Numba:
    def __init__(self, jit):
        import numba

        self.jit = jit
        self.name = f"numba {numba.__version__}"

    def horizontal(self, src: np.ndarray, bpp: int, c: Coefficients, first: int, rows: int) -> np.ndarray:
        pixels = src.view(np.uint32) if bpp == 4 else src
        out = np.empty((rows, len(c.count)), dtype=pixels.dtype)
        self.jit.horizontal(pixels, out, first, c.start, c.count, c.taps, c.precision)
        return out.view(np.uint8)

    def vertical(self, src: np.ndarray, c: Coefficients, first: int) -> np.ndarray:
        out = np.empty((len(c.count), src.shape[1]), dtype=np.uint8)
        self.jit.rows_pass(src, out, first, c.start, c.count, c.taps, c.precision)
        return out


ENGINE_ENV = settings.ENV["resample_engine"]  # numba (default where it imports) or numpy


_chosen: ContextVar[str | None] = ContextVar("resample_engine", default=None)  # `engine_for` in this context


def _engine():
    return _engine_named(_chosen.get() or settings.current().resample_engine)


@contextmanager
def engine_for(name: str) -> Iterator[None]:
    """Run the passes in this context (this thread) with engine `name` ("numpy" or "numba"), not
    the run's: the same bytes either way. The building process resizes only its contact sheet's
    thumbnails, small images that the numpy passes make in about 1.4 times numba's time (1.0 against
    0.7 ms at 96 px), and so never loads numba's compiled passes (about 100 MB)."""
    token = _chosen.set(name)
    try:
        yield
    finally:
        _chosen.reset(token)


@lru_cache(maxsize=2)
def _engine_named(name: str):
    if name != "numpy":
        try:
            from . import _resample_jit
        except ImportError:  # no numba for this Python or machine: the same bytes, slower
            pass
        else:
            return _Numba(_resample_jit)
    return _Numpy()


def engine() -> str:
    """What runs the passes in this process: 'numba <version>' or 'numpy'."""
    return _engine().name


def resample_rows(src: np.ndarray, bpp: int, size: tuple[int, int], filter: int,
                  box: tuple[float, float, float, float]) -> np.ndarray:
    """`src` (height, width * bpp) uint8 resampled to `size` = (width, height), as pillow-simd's
    ImagingResampleInner does it: the horizontal pass first, over only the source rows the vertical
    pass reads, then the vertical pass, each rounding to 8 bits. Returns (height, width * bpp)."""
    eng = _engine()
    in_h, in_w = src.shape[0], src.shape[1] // bpp
    out_w, out_h = size
    need_h = out_w != in_w or box[0] != 0 or box[2] != out_w
    need_v = out_h != in_h or box[1] != 0 or box[3] != out_h
    horiz = coefficients(in_w, box[0], box[2], out_w, filter)
    vert = coefficients(in_h, box[1], box[3], out_h, filter)
    first = int(vert.start[0])
    last = int(vert.start[-1] + vert.count[-1])
    out, offset = src, 0
    if need_h:
        out, offset = eng.horizontal(src, bpp, horiz, first, last - first), first
    if need_v:
        out = eng.vertical(out, vert, offset)
    return out if (need_h or need_v) else src.copy()


# ---------------------------------------------------------------------------- Pillow in and out


class _ArrowSchema(ctypes.Structure):
    pass


_ArrowSchema._fields_ = [
    ("format", ctypes.c_char_p), ("name", ctypes.c_char_p), ("metadata", ctypes.c_char_p),
    ("flags", ctypes.c_int64), ("n_children", ctypes.c_int64),
    ("children", ctypes.POINTER(ctypes.POINTER(_ArrowSchema))), ("dictionary", ctypes.c_void_p),
    ("release", ctypes.c_void_p), ("private_data", ctypes.c_void_p),
]


class _ArrowArray(ctypes.Structure):
    pass


_ArrowArray._fields_ = [
    ("length", ctypes.c_int64), ("null_count", ctypes.c_int64), ("offset", ctypes.c_int64),
    ("n_buffers", ctypes.c_int64), ("n_children", ctypes.c_int64),
    ("buffers", ctypes.POINTER(ctypes.c_void_p)), ("children", ctypes.POINTER(ctypes.POINTER(_ArrowArray))),
    ("dictionary", ctypes.c_void_p), ("release", ctypes.c_void_p), ("private_data", ctypes.c_void_p),
]

_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype = ctypes.c_void_p
_capsule_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]


class _Borrowed:
    """A read-only numpy view of memory Pillow exported through the Arrow C data interface; holds
    the export (and so the image's pixels) alive for as long as the array lives."""

    def __init__(self, address: int, nbytes: int, capsules: tuple):
        self._capsules = capsules
        self.__array_interface__ = {"version": 3, "shape": (nbytes,), "typestr": "|u1",
                                    "data": (address, True)}


def _arrow_rows(img: Image.Image, bpp: int) -> np.ndarray | None:
    """The image's pixel rows without a copy, where Pillow (11.2 and later) exports them as one
    contiguous block; None otherwise (large images span several blocks)."""
    export = getattr(img, "__arrow_c_array__", None)
    if export is None or Image.core.get_alignment() != 1:  # aligned rows would have gaps
        return None
    if img.readonly:
        # A mapped image (Image.frombuffer, fromarray of L) has no memory blocks of its own, and
        # Pillow 12's export dereferences them: a segmentation fault. The build's images are decoded
        # (never mapped), but this module must not crash on anyone's image.
        return None
    try:
        schema_capsule, array_capsule = export()
    except (ValueError, NotImplementedError, OSError):
        return None
    schema = _ArrowSchema.from_address(_capsule_pointer(schema_capsule, b"arrow_schema"))
    array = _ArrowArray.from_address(_capsule_pointer(array_capsule, b"arrow_array"))
    width, height = img.size
    if bpp == 4:
        if schema.format != b"+w:4" or array.n_children != 1 or array.offset:
            return None
        array = array.children[0].contents
    elif schema.format != b"C":
        return None
    if array.offset or array.n_buffers != 2 or array.length != width * height * bpp or not array.buffers[1]:
        return None
    view = np.asarray(_Borrowed(array.buffers[1], width * height * bpp, (schema_capsule, array_capsule)))
    return view.reshape(height, width * bpp)


STRIP_BYTES = 16 << 20  # pixel_rows copies an image that Pillow holds in several blocks a strip at a time


def pixel_rows(img: Image.Image) -> tuple[np.ndarray, int]:
    """(rows, bpp): an L or RGB image's pixels as (height, width * bpp) uint8, RGB as RGBX. Where
    they must be copied, a strip of rows at a time: `tobytes` of the whole image holds its pieces and
    their join at once (2.1 GB for a 179 Mpx image)."""
    bpp = 4 if img.mode == "RGB" else 1
    rows = _arrow_rows(img, bpp)
    if rows is None:
        width, height = img.size
        rows = np.empty((height, width * bpp), dtype=np.uint8)
        step = max(1, STRIP_BYTES // (width * bpp))
        for top in range(0, height, step):
            strip = img.crop((0, top, width, min(top + step, height)))
            raw = strip.tobytes("raw", "RGBX") if bpp == 4 else strip.tobytes()
            rows[top:top + step] = np.frombuffer(raw, dtype=np.uint8).reshape(-1, width * bpp)
    return rows, bpp


def resize(img: Image.Image, size: tuple[int, int], filter: int,
           box: tuple[float, float, float, float] | None = None) -> Image.Image:
    """`img.resize(size, filter, box)` as pillow-simd computes it, for modes L and RGB; other
    modes and NEAREST (not a convolution, the same code in both Pillows) go to Pillow itself."""
    size = (int(size[0]), int(size[1]))
    full = (0, 0) + img.size
    box = full if box is None else tuple(box)
    if img.size == size and box == full:
        return img.copy()
    if filter == Image.Resampling.NEAREST or img.mode not in ("L", "RGB"):
        return img.resize(size, filter, box)
    if (box[0] == int(box[0]) and box[1] == int(box[1]) and box[2] - box[0] == size[0]
            and box[3] - box[1] == size[1]):
        return img.crop(tuple(int(v) for v in box))  # _imaging.c: a same-size box is a crop
    img.load()
    rows, bpp = pixel_rows(img)
    out = resample_rows(rows, bpp, size, filter, tuple(float(v) for v in box))
    if bpp == 4:
        result = Image.frombytes("RGB", size, out.tobytes() if not out.flags.c_contiguous else out, "raw", "RGBX")
    else:
        result = Image.frombytes("L", size, out if out.flags.c_contiguous else out.tobytes())
    result.info = dict(img.info)  # as Image.resize keeps it
    return result
