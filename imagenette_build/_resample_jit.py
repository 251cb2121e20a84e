"""The two passes of `resample`, compiled by numba (imported only where numba is installed).

Both have the arithmetic of `resample._rows_pass_numpy`: an int32 accumulator that starts at
2**(p-1), adds pixel * int16 tap, is shifted right by p (arithmetic: floor) and clipped to 0..255.
Their inner loops run along contiguous bytes, which the compiler vectorises.
"""

from __future__ import annotations

import numba
import numpy as np

TILE_ROWS = 64  # rows of the horizontal pass done together: enough to amortise the call, few enough to stay in cache


def _jit(fn):
    try:
        return numba.jit(nopython=True, nogil=True, cache=True)(fn)
    except RuntimeError:  # nowhere to write numba's cache (read-only install, no home): compile each run
        return numba.jit(nopython=True, nogil=True)(fn)


@_jit
def _accumulate(src, s, n, taps_i, half, precision, acc, width, dst):  # pragma: no cover - compiled
    """dst[j] = clip((half + sum_t src[s + t, j] * taps_i[t]) >> precision) for j < width;
    `acc` is int32 scratch of at least `width`. Four taps a sweep over `acc`: fewer loads and
    stores of it, and pairs of 16-bit products the compiler can fuse."""
    for j in range(width):
        acc[j] = half
    t = 0
    while t + 4 <= n:
        k0 = np.int32(taps_i[t])
        k1 = np.int32(taps_i[t + 1])
        k2 = np.int32(taps_i[t + 2])
        k3 = np.int32(taps_i[t + 3])
        l0 = src[s + t]
        l1 = src[s + t + 1]
        l2 = src[s + t + 2]
        l3 = src[s + t + 3]
        for j in range(width):
            acc[j] += (np.int32(l0[j]) * k0 + np.int32(l1[j]) * k1) + (np.int32(l2[j]) * k2 + np.int32(l3[j]) * k3)
        t += 4
    while t < n:
        k = np.int32(taps_i[t])
        line = src[s + t]
        for j in range(width):
            acc[j] += np.int32(line[j]) * k
        t += 1
    for j in range(width):
        v = acc[j] >> precision
        dst[j] = 0 if v < 0 else (255 if v > 255 else v)


@_jit
def rows_pass(src, out, first, start, count, taps, precision):  # pragma: no cover - compiled
    """The vertical pass: out row i from src rows start[i] - first ...; both (rows, bytes) uint8."""
    half = np.int32(1 << (precision - 1))
    width = out.shape[1]
    acc = np.empty(width, dtype=np.int32)
    for i in range(out.shape[0]):
        _accumulate(src, start[i] - first, count[i], taps[i], half, precision, acc, width, out[i])


@_jit
def horizontal(src, out, first, start, count, taps, precision):  # pragma: no cover - compiled
    """The horizontal pass: out[y, i] from src[first + y, start[i] ...], for arrays of pixels
    (uint32 RGBX or uint8 L). A tile of rows is transposed into `columns`, so that each output
    pixel of the tile is one contiguous multiply-accumulate, then transposed back."""
    rows, n_out = out.shape
    width = src.shape[1]
    bpp = src.itemsize
    half = np.int32(1 << (precision - 1))
    columns = np.empty((width, TILE_ROWS), dtype=src.dtype)
    column_bytes = columns.view(np.uint8)
    made = np.empty((n_out, TILE_ROWS), dtype=src.dtype)
    made_bytes = made.view(np.uint8)
    acc = np.empty(TILE_ROWS * bpp, dtype=np.int32)
    for y0 in range(0, rows, TILE_ROWS):
        tile = min(TILE_ROWS, rows - y0)
        for y in range(tile):
            line = src[first + y0 + y]
            for x in range(width):
                columns[x, y] = line[x]
        for i in range(n_out):
            _accumulate(column_bytes, start[i], count[i], taps[i], half, precision, acc, tile * bpp,
                        made_bytes[i])
        for y in range(tile):
            dst = out[y0 + y]
            for i in range(n_out):
                dst[i] = made[i, y]
