"""The benchmark's own helpers (`bench/`, never run in CI as a benchmark): the floor and the
per-image budget (budget.py) time `transform.decode_for`, which must decode as a build does, or they would measure
another decode."""

import importlib
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagenette_build.transform import Recipe, dct_scale, decode_for, encode, resize, resize_pixels, target_size

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def bench_modules(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    yield importlib.import_module("floor"), importlib.import_module("bench"), importlib.import_module("budget")
    for name in ("floor", "bench", "budget"):
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
    floor, _, _ = bench_modules
    data = _photo_like(size, mode)
    for recipe in (Recipe(), Recipe(decode="scaled")):
        img, box, target = decode_for(data, 160, recipe)
        assert target == target_size(*size, 160)
        scale = dct_scale(*size, target) if recipe.decode == "scaled" else 1
        assert img.size == (-(-size[0] // scale), -(-size[1] // scale))  # libjpeg rounds a scaled side up
        assert img.mode == ("L" if mode == "L" else "RGB")
        tool = resize_pixels(data, (160,), recipe)[160]
        assert np.array_equal(np.asarray(resize(img, target, recipe.filter, box)), np.asarray(tool))
    img, box, target = decode_for(data, 160)
    (tmp_path / "a.JPEG").write_bytes(data)
    # the floor makes exactly the build's image
    built = resize_pixels(data, (160,), Recipe())[160]
    assert floor.decode_resize_encode((str(tmp_path / "a.JPEG"), 160)) == len(encode(built, 75))


def test_a_budget_pass_times_every_stage(bench_modules, tmp_path, monkeypatch):
    _, _, budget = bench_modules
    corpus = tmp_path / "corpus" / "train" / "n01440764"
    corpus.mkdir(parents=True)
    for i, size in enumerate(((500, 375), (1400, 1000), (300, 500), (640, 480))):
        (corpus / f"n01440764_{i}.JPEG").write_bytes(_photo_like(size))
    assert [p.name for p in budget.sample(tmp_path / "corpus", 2)] == ["n01440764_0.JPEG", "n01440764_2.JPEG"]
    out = tmp_path / "budget.jsonl"
    for _ in range(2):  # one line a pass, appended: bench.py runs one pass a round
        monkeypatch.setattr(sys, "argv", ["budget.py", str(tmp_path / "corpus"), "160", "3", str(out)])
        budget.main()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 2
    assert set(lines[0]) == {"images", "decode", "resize", "encode", "task", "task, cache"}
    assert lines[0]["images"] == 3
    assert all(t > 0 for line in lines for k, t in line.items())


def test_the_budget_sets_each_rounds_pass_beside_its_builds(bench_modules):
    _, bench, _ = bench_modules
    passes = [{"decode": 2.0, "resize": 0.5, "encode": 0.2, "task, cache": 3.0},
              {"decode": 1.0, "resize": 0.25, "encode": 0.1, "task, cache": 1.5}]
    per = bench.budget_rounds(passes, floor_cpus=[30.0, 15.0], tool_cpus=[54.0, 13.5], n_images=1000)
    assert per["stages"] == pytest.approx([2.7, 1.35])
    assert per["task"] == pytest.approx([3.0, 1.5])
    assert per["floor"] == pytest.approx([30.0, 15.0])  # ms of CPU per image
    assert per["build"] == pytest.approx([54.0, 13.5])


def test_interleaved_runs_every_variant_each_round_and_measures_what_it_wrote(bench_modules, tmp_path, monkeypatch):
    _, bench, _ = bench_modules
    monkeypatch.setattr(bench, "warm", lambda files: None)
    out = tmp_path / "out.bin"
    log = tmp_path / "log"
    write = [sys.executable, "-c", f"open({str(out)!r}, 'wb').write(b'x' * 3_000_000); open({str(log)!r}, 'a').write('w')"]
    other = [sys.executable, "-c", f"open({str(log)!r}, 'a').write('o')"]
    rows = bench.interleaved({"writes": (write, lambda: out.unlink(missing_ok=True), lambda: out.stat().st_size),
                              "no archive": (other, None, lambda: None)}, 2, [])
    assert log.read_text() == "wowo"  # in turn, round by round
    assert rows["writes"]["archive_mb"] == 3.0  # measured after the run, not after the cleanup before it
    assert "archive_mb" not in rows["no archive"]
    assert len(rows["writes"]["walls"]) == len(rows["no archive"]["cpus"]) == 2


def test_the_class_mix_figures_of_a_batch(monkeypatch):
    """bench/classmix.py: the classes a batch holds and the largest share of one class in a batch."""
    monkeypatch.syspath_prepend(str(BENCH))
    classmix = importlib.import_module("classmix")
    try:
        mix = classmix.class_mix([[3] * 64, list(range(10)) * 6 + [0] * 4, [1, 2] * 32])
    finally:
        sys.modules.pop("classmix", None)
    assert mix == {"classes_median": 2, "classes_min": 1, "top_share_median": 0.5, "top_share_max": 1.0}
