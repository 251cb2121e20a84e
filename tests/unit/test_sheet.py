"""The contact sheet of a build (sheet.py): the PNG written by hand decodes to the very pixels drawn;
the sheet keeps, per class, the images whose file names have the smallest sha256, whatever order
they come in, so the same images give the same bytes; and a class beyond the sheet's rows is left
out, never an error."""

from __future__ import annotations

import hashlib
import io
import random

import numpy as np
import pytest
from PIL import Image

from imagenette_build import sheet
from imagenette_build.sheet import BuildSheet, png, stable_thumbnail


def _jpeg(seed: int, size=(60, 40), mode="RGB") -> bytes:
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def test_the_png_decodes_to_the_pixels_drawn():
    rng = np.random.default_rng(1)
    img = Image.fromarray(rng.integers(0, 255, (37, 53, 3), dtype=np.uint8), "RGB")
    data = png(img)
    back = Image.open(io.BytesIO(data))
    assert back.format == "PNG" and back.mode == "RGB" and back.size == (53, 37)
    assert np.array_equal(np.asarray(back), np.asarray(img))
    assert png(img) == data


def test_thumbnails_fit_the_box_and_grayscale_becomes_rgb():
    t = stable_thumbnail(_jpeg(2, (200, 100)), 96)
    assert t.size == (96, 48) and t.mode == "RGB"
    assert stable_thumbnail(_jpeg(3, (30, 20), "L"), 96).size == (30, 20)  # never enlarged
    assert stable_thumbnail(b"not an image", 96) is None


def test_the_same_images_in_any_order_give_the_same_bytes():
    classes = [("n01440764", "tench"), ("n02102040", "English springer")]
    images = [(w, f"train/{w}/{w}_{i}.JPEG", _jpeg(10 * k + i)) for k, (w, _) in enumerate(classes) for i in range(9)]
    sheets = []
    for seed in (0, 1, 2):
        order = images[:]
        random.Random(seed).shuffle(order)
        s = BuildSheet(classes, per_class=3, thumb=32)
        for wnid, member, data in order:
            s.add(wnid, member, data)
        sheets.append(s)
    assert sheets[0].png() == sheets[1].png() == sheets[2].png()
    for wnid, _ in classes:  # the three file names with the smallest sha256 of each class
        names = sorted((m.rsplit("/", 1)[1] for w, m, _ in images if w == wnid),
                       key=lambda n: hashlib.sha256(n.encode()).hexdigest())
        assert [k for k, _ in sorted(sheets[0].rows[wnid].chosen)] == [
            hashlib.sha256(n.encode()).hexdigest() for n in names[:3]]
    img = Image.open(io.BytesIO(sheets[0].png()))
    assert img.size == (sheet.LABEL_WIDTH + 3 * (32 + sheet.GAP) + sheet.GAP, 2 * (32 + sheet.GAP) + sheet.GAP)


def test_classes_beyond_the_rows_are_left_out():
    many = [(f"n{i:08d}", f"class {i}") for i in range(sheet.MAX_CLASSES + 5)]
    s = BuildSheet(many, per_class=1, thumb=8)
    assert len(s.rows) == sheet.MAX_CLASSES
    s.add(many[-1][0], "train/x/x_1.JPEG", _jpeg(1))  # a class not shown: ignored
    s.add("n99999999", "train/y/y_1.JPEG", _jpeg(2))  # nor one the dataset does not have
    assert all(not r.chosen for r in s.rows.values())


def test_the_build_sheet_leaves_numba_unloaded_and_its_thumbnails_are_the_run_engines():
    """The building process resizes only its sheet's thumbnails, with the numpy passes
    (`resample.engine_for`): numba (about 100 MB) is never imported there. Run in a fresh
    interpreter, where nothing else has imported it; the thumbnails are the bytes the run's own
    engine makes."""
    import subprocess
    import sys

    code = """
import io, sys
from PIL import Image
from imagenette_build import settings, sheet
settings.install(settings.Settings.from_environ())
s = sheet.BuildSheet([("n01440764", "tench")], per_class=3)
for k in range(6):
    buf = io.BytesIO()
    Image.radial_gradient("L").convert("RGB").resize((213 + k, 160)).save(buf, "JPEG")
    s.add("n01440764", f"train/n01440764/n01440764_{k}.JPEG", buf.getvalue())
s.png()
print("numba" in sys.modules)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"
    data = _jpeg(3, (213, 160), "RGB")
    with sheet.resample.engine_for("numpy"):
        numpy_thumb = stable_thumbnail(data, 96)
    assert numpy_thumb.tobytes() == stable_thumbnail(data, 96).tobytes()


def test_a_sheet_drawn_in_bands_is_the_sheet_drawn_whole():
    """The build's sheet is filtered and deflated a band (a class row) at a time, never held whole:
    the same PNG bytes as the whole image drawn and encoded; bands that do not make the image are
    refused."""
    classes = [(f"n{i:08d}", f"class {i}") for i in range(7)]
    built = BuildSheet(classes, per_class=3)
    for i, (wnid, _) in enumerate(classes[:5]):  # (two classes without images: empty rows)
        for k in range(1 + i % 4):
            built.add(wnid, f"train/{wnid}/{wnid}_{k}.JPEG", _jpeg(10 * i + k, (70 + 9 * k, 50)))
    rows = list(built.rows.values())
    assert built.png() == png(sheet.draw(rows))
    assert png(sheet.draw([])) == sheet.png_of_bands(*sheet._size([]), sheet._bands([]))
    with pytest.raises(ValueError):
        sheet.png_of_bands(10, 4, [Image.new("RGB", (10, 3))])  # a row short
    with pytest.raises(ValueError):
        sheet.png_of_bands(10, 4, [Image.new("RGB", (9, 4))])  # too narrow


def test_a_sheet_that_keeps_bytes_makes_only_the_thumbnails_it_shows(monkeypatch):
    """`later`: the chosen images' bytes are kept and only the thumbnails shown are made, when the
    sheet is drawn (60 images of a class in a random key order: a dozen or more are chosen, then
    pushed out, on the way); the same PNG as making each thumbnail at once."""
    made = []
    real = sheet.stable_thumbnail
    monkeypatch.setattr(sheet, "stable_thumbnail", lambda data, size: made.append(1) or real(data, size))
    classes = [("n01440764", "tench"), ("n02102040", "springer")]
    sheets = {later: BuildSheet(classes, per_class=3, later=later) for later in (False, True)}
    for k in range(60):
        for wnid, _ in classes:
            data = _jpeg(k + (100 if wnid.startswith("n02") else 0), (64, 48))
            for s in sheets.values():
                s.add(wnid, f"train/{wnid}/{wnid}_{k}.JPEG", data)
    at_once = len(made)
    made.clear()
    assert sheets[True].png() == sheets[False].png()
    assert len(made) == 6 < at_once
