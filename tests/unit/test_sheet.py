"""The contact sheet of a build (sheet.py): the PNG written by hand decodes to the very pixels drawn;
the sheet keeps, per class, the images whose file names have the smallest sha256, whatever order
they come in, so the same images give the same bytes; and a class beyond the sheet's rows is left
out, never an error."""

from __future__ import annotations

import hashlib
import io
import random

import numpy as np
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
