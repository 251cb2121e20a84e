"""The benchmark's own helpers (`bench/`, never run in CI as a benchmark): the floor and the
per-image budget time `transform.decoded`, which must decode as a build does, or they would measure
another decode."""

import importlib
import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagenette_build.transform import Recipe, dct_scale, decoded, encode, resized_images, target_size

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture
def bench_modules(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    yield importlib.import_module("floor"), importlib.import_module("bench")
    for name in ("floor", "bench"):
        sys.modules.pop(name, None)


def _photo_like(size: tuple[int, int], mode: str = "RGB") -> bytes:
    """Smooth gradients and some noise: a JPEG whose DCT-scaled decode differs from a full one."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    noise = np.random.default_rng(w * h).integers(0, 40, (h, w, 3))
    arr = np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (w + h)], axis=-1) + noise
    buf = io.BytesIO()
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB").convert(mode).save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.mark.parametrize("size, mode", [((500, 375), "RGB"), ((1400, 1000), "RGB"), ((2600, 1300), "L"),
                                        ((1000, 1400), "CMYK")])
def test_the_decode_the_floor_times_is_the_builds(bench_modules, tmp_path, size, mode):
    floor, _ = bench_modules
    data = _photo_like(size, mode)
    img, box, target = decoded(data, 160)
    assert target == target_size(*size, 160)
    scale = dct_scale(*size, target)
    assert img.size == (-(-size[0] // scale), -(-size[1] // scale))  # libjpeg rounds a scaled side up
    assert img.mode == ("L" if mode == "L" else "RGB")
    tool = resized_images(data, (160,), Recipe())[160]
    assert np.array_equal(np.asarray(img.resize(target, Image.BICUBIC, box=box)), np.asarray(tool))
    (tmp_path / "a.JPEG").write_bytes(data)
    # the floor encodes that decoded image, at its decoded size
    assert floor.decode_encode((str(tmp_path / "a.JPEG"), 160)) == len(encode(img, 75))


def test_stage_budget_times_every_stage(bench_modules, tmp_path):
    _, bench = bench_modules
    files = []
    for i, size in enumerate(((500, 375), (1400, 1000), (300, 500))):
        files.append(tmp_path / f"{i}.JPEG")
        files[-1].write_bytes(_photo_like(size))
    times = bench.stage_budget(files, 160, tmp_path, passes=1)
    assert set(times) == {"decode", "resize", "encode", "task", "task, cache"}
    assert all(t > 0 for t in times.values())
