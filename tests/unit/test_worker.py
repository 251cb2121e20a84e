"""The worker's task (worker.py): each source image of a batch becomes its outputs or a one-line
error string naming the file, never an exception; every kind of bad image, and the kinds that are
converted, as a worker sees them."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from imagenette_build.cache import open_cache
from imagenette_build.sources import SourceRef
from imagenette_build.toolchain import fingerprint
from imagenette_build.transform import Recipe, target_size
from imagenette_build.worker import Task, process_batch

from .. import faultkit as fk
from .test_transform import _jpeg


@pytest.mark.parametrize("sizes", [(64,), (None,), (64, None)], ids=["resized", "full", "both"])
@pytest.mark.parametrize("kind", [*fk.BROKEN, "symlink_loop"])
def test_each_broken_kind_is_an_error_naming_the_file(tmp_path, kind, sizes):
    path = tmp_path / f"{kind}.JPEG"
    path.write_bytes(b"placeholder")
    fk.install(path, kind)
    [result] = process_batch(Task([SourceRef(str(path))], sizes, Recipe())).images
    assert result.outputs is None
    assert result.error.startswith(f"{path}: ")
    phrase = "too many levels of symbolic links" if kind == "symlink_loop" else fk.BROKEN[kind][1][sizes[0] is None]
    assert phrase in result.error, result.error
    assert "\n" not in result.error


@pytest.mark.parametrize("kind", list(fk.CONVERTED))
def test_each_converted_kind_becomes_a_jpeg_and_full_size_is_verbatim(tmp_path, kind):
    path = tmp_path / f"{kind}.JPEG"
    path.write_bytes(fk.CONVERTED[kind][0]())
    [result] = process_batch(Task([SourceRef(str(path))], (64, None), Recipe())).images
    assert result.error is None
    resized, full = result.outputs
    img = Image.open(io.BytesIO(resized))
    assert (img.format, img.mode, img.size) == ("JPEG", fk.CONVERTED[kind][1], target_size(300, 200, 64))
    assert full == path.read_bytes()


def test_exif_orientation_is_left_as_stored(tmp_path):
    """The source is stored 300x200 with orientation 6 (shown 200x300): the output keeps the stored
    pixels' orientation (landscape) and carries no EXIF, so every viewer shows it the same way."""
    data = fk.exif_rotated_jpeg()
    assert Image.open(io.BytesIO(data)).getexif().get(0x0112) == 6
    path = tmp_path / "rotated.JPEG"
    path.write_bytes(data)
    [result] = process_batch(Task([SourceRef(str(path))], (64,), Recipe())).images
    out = Image.open(io.BytesIO(result.outputs[0]))
    assert out.size == (96, 64)
    assert 0x0112 not in out.getexif()
    # the left edge of the stored image is dark in red, the right edge bright: still so
    px = out.convert("RGB").load()
    assert px[2, 32][0] < 40 and px[93, 32][0] > 215


def test_bytes_after_the_end_of_image_are_accepted_like_the_decoder_does(tmp_path):
    path = tmp_path / "trailing.JPEG"
    path.write_bytes(fk.good_jpeg() + b"\0\0garbage after EOI")
    [result] = process_batch(Task([SourceRef(str(path))], (64, None), Recipe())).images
    assert result.error is None and result.outputs[1] == path.read_bytes()


def test_process_batch_reports_bad_images_without_raising(tmp_path):
    good = tmp_path / "good.JPEG"
    good.write_bytes(_jpeg())
    empty = tmp_path / "empty.JPEG"
    empty.write_bytes(b"")
    text = tmp_path / "text.JPEG"
    text.write_bytes(b"hello, not an image")
    truncated = tmp_path / "truncated.JPEG"
    truncated.write_bytes(_jpeg()[:2000])
    refs = [SourceRef(str(p)) for p in (good, empty, text, truncated, tmp_path / "absent.JPEG")]
    results = process_batch(Task(refs, (160, None), Recipe())).images
    assert results[0][1] is None and results[0][0][1] == good.read_bytes()
    for (outputs, error, *_), ref in zip(results[1:], refs[1:]):
        assert outputs is None
        assert error.startswith(ref.path)


def test_source_ref_prefetch_of_a_missing_file_is_silent_and_read_reports_it(tmp_path):
    ref = SourceRef(str(tmp_path / "gone.JPEG"))
    ref.prefetch()  # nothing to say: the read does
    [result] = process_batch(Task([ref], (64,), Recipe(), prefetch=True)).images
    assert result.outputs is None and "gone.JPEG" in result.error and "no such file" in result.error


def test_process_batch_same_output_with_and_without_prefetch(sample):
    root, _ = sample
    refs = [SourceRef(str(p)) for p in sorted((root / "train").rglob("*.JPEG"))[:6]]
    plain = process_batch(Task(refs, (64, None), Recipe())).images
    assert process_batch(Task(refs, (64, None), Recipe(), prefetch=True)).images == plain
    assert all(r.error is None for r in plain)


# ------------------------------------------------------------------------------ with a cache


def test_a_second_run_finds_every_image_in_the_cache_and_gives_the_same_bytes(tmp_path):
    sources = []
    for i, (w, h) in enumerate([(300, 200), (200, 300), (640, 480)]):
        path = tmp_path / f"n01440764_{i}.JPEG"
        path.write_bytes(fk.good_jpeg(w, h))
        sources.append(SourceRef(str(path)))
    cache = open_cache(tmp_path / "cache", fingerprint()).cache
    first = process_batch(Task(sources, (32, 48, None), Recipe(), cache=cache))
    assert all(r.error is None for r in first.images)
    assert {s: (c.hits, c.misses, c.written) for s, c in first.cache.items()} == {32: (0, 3, 3), 48: (0, 3, 3)}
    # the next pass (renewed: its workers read the index the first one wrote)
    second = process_batch(Task(sources, (32, 48, None), Recipe(), cache=cache.renewed()))
    assert second.images == first.images
    assert {s: (c.hits, c.misses, c.written) for s, c in second.cache.items()} == {32: (3, 0, 0), 48: (3, 0, 0)}
    # a new size, a new recipe or a changed source is made, not found
    third = process_batch(Task(sources, (32, 64), Recipe(quality=90), cache=cache.renewed()))
    assert {s: c.hits for s, c in third.cache.items()} == {32: 0, 64: 0}
    Path(sources[0].path).write_bytes(fk.good_jpeg(301, 200))  # same name, new content
    fourth = process_batch(Task(sources, (32,), Recipe(), cache=cache.renewed()))
    assert (fourth.cache[32].hits, fourth.cache[32].misses) == (2, 1)
    # (the fingerprints too: the cache holds them with the JPEG)
    assert fourth.images[1:] == [(r.outputs[:1], None, r.origins[:1], r.fingerprints[:1]) for r in first.images[1:]]


def test_without_a_cache_there_are_no_counters_and_bad_images_stay_strings(tmp_path):
    good, bad = tmp_path / "good.JPEG", tmp_path / "bad.JPEG"
    good.write_bytes(fk.good_jpeg())
    bad.write_bytes(b"<html>404</html>")
    result = process_batch(Task([SourceRef(str(bad)), SourceRef(str(good))], (32,), Recipe()))
    assert result.cache == {}
    [error, fine] = result.images
    assert error.outputs is None and error.error.startswith(f"{bad}: not an image") and "\n" not in error.error
    assert fine.error is None and Image.open(io.BytesIO(fine.outputs[0])).size == (48, 32)
