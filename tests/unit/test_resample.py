"""The port of pillow-simd's resampling (`resample`): pixel for pixel what pillow-simd computes.

Where pillow-simd is the installed PIL (one of CI's two environments) the property test compares
the port with it directly; on stock Pillow the golden digests below (computed by pillow-simd) say
the same for a fixed set of images, so each CI environment checks the port against pillow-simd.
"""

from __future__ import annotations

import hashlib
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from imagenette_build import resample
from imagenette_build.toolchain import pillow_flavour

SIMD = pillow_flavour() == "pillow-simd"
CONVOLUTIONS = [Image.Resampling.BICUBIC, Image.Resampling.BILINEAR, Image.Resampling.LANCZOS,
                Image.Resampling.BOX, Image.Resampling.HAMMING]


def photo_like(width: int, height: int, mode: str, seed: int) -> Image.Image:
    """Smooth gradients, hard edges and noise: every kind of neighbourhood the filters meet."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = (x * rng.uniform(0.2, 3) + y * rng.uniform(0.2, 3)) % 256
    edges = ((x // max(1, width // 5) + y // max(1, height // 4)) % 2) * rng.integers(0, 160)
    channels = 3 if mode == "RGB" else 1
    noise = rng.integers(0, 60, (height, width, channels))
    arr = np.clip(base[..., None] + edges[..., None] + noise - 30, 0, 255).astype(np.uint8)
    # L straight from the array: convert("L") itself differs between the Pillows (pillow-simd has
    # its own RGB->L arithmetic, which the build never uses: it keeps the source's mode)
    # (.copy(): an image of its own, as decoded images are, not one mapped on the numpy array)
    return Image.fromarray(arr if channels == 3 else arr[:, :, 0]).copy()


@pytest.fixture(params=["numba", "numpy"])
def engine(request, use_settings):
    use_settings(resample_engine=request.param)
    yield request.param


sizes = st.integers(min_value=1, max_value=420)


@pytest.mark.skipif(not SIMD, reason="compares with pillow-simd, installed in CI's second environment")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(w=sizes, h=sizes, out_w=sizes, out_h=sizes, mode=st.sampled_from(["RGB", "L"]),
       filt=st.sampled_from(CONVOLUTIONS), seed=st.integers(0, 2**16), use_box=st.booleans(),
       box_frac=st.tuples(*[st.floats(0, 0.45)] * 4))
def test_port_equals_pillow_simd(engine, w, h, out_w, out_h, mode, filt, seed, use_box, box_frac):
    img = photo_like(w, h, mode, seed)
    box = None
    if use_box:  # a sub-rectangle in float coordinates, as DCT-scaled decoding passes one
        box = (box_frac[0] * w, box_frac[1] * h, w - box_frac[2] * w, h - box_frac[3] * h)
    expected = np.asarray(img.resize((out_w, out_h), filt, box=box))
    got = np.asarray(resample.resize(img, (out_w, out_h), filt, box=box))
    assert got.shape == expected.shape
    diff = np.argwhere(got != expected)
    assert diff.size == 0, f"{len(diff)} values differ, first at {diff[0].tolist()}"


@pytest.mark.skipif(not SIMD, reason="compares with pillow-simd")
@pytest.mark.parametrize("size", [(213, 160), (320, 427), (1, 1), (640, 480), (500, 1)])
def test_port_equals_pillow_simd_on_shapes_that_matter(engine, size):
    """The shapes of the build: downscale to 160/320, enlargement of a small photo, extremes."""
    for mode in ("RGB", "L"):
        img = photo_like(500, 375, mode, 7)
        assert np.array_equal(np.asarray(resample.resize(img, size, Image.Resampling.BICUBIC)),
                              np.asarray(img.resize(size, Image.Resampling.BICUBIC)))


def _pixels_digest(img: Image.Image) -> str:
    return hashlib.sha256(np.ascontiguousarray(np.asarray(img)).tobytes()).hexdigest()


# The sha256 of the pixels of photo_like(w, h, mode, 3) resized to `size` with BICUBIC, as
# pillow-simd 12.1.1 computes them (its arithmetic has not changed since 7.0: the published images,
# made by 7.0, are reproduced by 12.1.1); test_golden_digests_are_pillow_simds re-checks them there.
GOLDEN = {
    (500, 375, "RGB", (213, 160)): "e7b08f6a2d19c67465426ac84cc63dd858fb4f311c144674578c7ec7310dc61d",
    (375, 500, "L", (160, 213)): "d4fe2f3bb5e90301deb72057c5ff5ff93d0ca8930d274bc700d99f2848df1943",
    (75, 56, "RGB", (214, 160)): "704d813ca3ee1e9a7e38d8e1dd9c2d4a18b7910cecab6b8cf6af81926bf108f3",  # enlarged
    # large: the tiled horizontal pass over several tiles
    (2400, 1600, "RGB", (480, 320)): "90a1bc4b055b497d1d9774c84cc4fe6082dde1f561a14af40dd8b9708da89562",
    (333, 333, "L", (160, 160)): "20c23f7b920fc96297a303d278ca08e0f1ba467cb85f7d17b016b3c145f61d0b",
}


def _case_id(case) -> str:
    return f"{case[0]}x{case[1]}{case[2]}"


@pytest.mark.parametrize("case", list(GOLDEN), ids=_case_id)
def test_port_matches_digests_computed_by_pillow_simd(engine, case):
    w, h, mode, size = case
    img = photo_like(w, h, mode, 3)
    assert _pixels_digest(resample.resize(img, size, Image.Resampling.BICUBIC)) == GOLDEN[case]


@pytest.mark.skipif(not SIMD, reason="the golden digests are pillow-simd's")
@pytest.mark.parametrize("case", list(GOLDEN), ids=_case_id)
def test_golden_digests_are_pillow_simds(case):
    w, h, mode, size = case
    img = photo_like(w, h, mode, 3)
    assert _pixels_digest(img.resize(size, Image.Resampling.BICUBIC)) == GOLDEN[case]


def test_zero_copy_and_copied_pixels_agree():
    """Pixels read through Pillow's Arrow export equal those of tobytes (the fallback)."""
    for mode in ("RGB", "L"):
        img = photo_like(123, 77, mode, 1)
        rows, bpp = resample.pixel_rows(img)
        raw = img.tobytes("raw", "RGBX") if mode == "RGB" else img.tobytes()
        assert rows.tobytes() == raw and bpp == (4 if mode == "RGB" else 1)
        if hasattr(img, "__arrow_c_array__"):
            assert resample._arrow_rows(img, bpp) is not None  # the copy-free path was taken


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_copied_pixels_are_copied_a_strip_at_a_time(monkeypatch, mode):
    """An image Pillow holds in several blocks (any large one) is copied: `tobytes` of the whole
    image held its pieces and their join at once, twice the image (2.1 GB in all for a 13,377 px
    square JPEG of 631 bytes). A strip at a time: the same rows, about once the image."""
    img = photo_like(1000, 700, mode, 5)
    expected = img.tobytes("raw", "RGBX") if mode == "RGB" else img.tobytes()
    monkeypatch.setattr(resample, "_arrow_rows", lambda img, bpp: None)
    monkeypatch.setattr(resample, "STRIP_BYTES", 64 << 10, raising=False)
    tracemalloc.start()
    try:
        rows, _ = resample.pixel_rows(img)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rows.tobytes() == expected
    assert peak < 1.25 * len(expected), (peak, len(expected))


def test_mapped_images_are_copied_not_exported():
    """Pillow 12 crashes exporting an image mapped on someone else's memory (frombuffer): such
    images take the copying path."""
    arr = np.arange(77 * 123, dtype=np.uint32).astype(np.uint8).reshape(77, 123)
    mapped = Image.frombuffer("L", (123, 77), arr.tobytes(), "raw", "L", 0, 1)
    assert mapped.readonly
    rows, _ = resample.pixel_rows(mapped)
    assert rows.tobytes() == arr.tobytes()
    assert np.array_equal(np.asarray(resample.resize(mapped, (50, 30), Image.Resampling.BICUBIC)),
                          np.asarray(resample.resize(mapped.copy(), (50, 30), Image.Resampling.BICUBIC)))


def test_borrowed_pixels_outlive_the_image():
    img = photo_like(64, 48, "RGB", 2)
    rows, _ = resample.pixel_rows(img)
    expected = img.tobytes("raw", "RGBX")
    del img
    assert rows.tobytes() == expected


def test_other_modes_and_nearest_go_to_pillow():
    img = photo_like(50, 40, "RGB", 4).convert("RGBA")
    assert np.array_equal(np.asarray(resample.resize(img, (20, 16), Image.Resampling.BICUBIC)),
                          np.asarray(img.resize((20, 16), Image.Resampling.BICUBIC)))
    rgb = photo_like(50, 40, "RGB", 4)
    assert np.array_equal(np.asarray(resample.resize(rgb, (20, 16), Image.Resampling.NEAREST)),
                          np.asarray(rgb.resize((20, 16), Image.Resampling.NEAREST)))


def test_coefficients_are_pillow_simds_int16_scaling():
    """The scale is the largest power of two keeping the biggest tap below 2**15 (at most 2**22)."""
    c = resample.coefficients(500, 0.0, 500.0, 213, Image.Resampling.BICUBIC)
    assert c.taps.dtype == np.int16 and c.precision == 16
    biggest = int(c.taps.max())
    assert biggest < 2**15 <= 2 * biggest + 2  # the next power of two would overflow int16
    assert all(abs(int(t[:n].sum()) - (1 << c.precision)) <= n for t, n in zip(c.taps, c.count))
    enlarge = resample.coefficients(75, 0.0, 75.0, 214, Image.Resampling.BICUBIC)
    assert enlarge.precision == 14 and enlarge.count.max() == 4  # support 2 on each side
