"""Making the images (transform.py): the output size (fast.ai's 2018 script for the published recipe),
the mode policy, quality, DCT-scaled decoding, one decode for several sizes, the full-size check, an
output that carries none of the source's metadata, and the pixel bounds shared with verify."""

from __future__ import annotations

import io
import struct
from unittest import mock

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageFile

from imagenette_build.limits import MAX_SIZE
from imagenette_build.transform import ROUNDINGS, Recipe, dct_scale, make_jpegs, target_size

from .. import faultkit as fk


@pytest.mark.parametrize("w,h,size,rounding,expected", [
    (500, 375, 160, "floor", (213, 160)),   # 500*160/375 = 213.33
    (375, 500, 160, "floor", (160, 213)),
    (500, 333, 160, "floor", (240, 160)),   # 240.24
    (500, 333, 160, "round", (240, 160)),
    (500, 333, 160, "ceil", (241, 160)),
    (500, 375, 320, "round", (427, 320)),   # 426.67
    (75, 56, 160, "floor", (214, 160)),     # small images are enlarged
    (333, 333, 160, "floor", (160, 160)),
    (2000, 240, 160, "floor", (1333, 160)),
])
def test_target_size(w, h, size, rounding, expected):
    assert target_size(w, h, size, rounding) == expected


def test_target_size_short_side_exact_for_every_short_side():
    # int(w / (short / S)) in floats gives S-1 for some shapes; the integer recipe never does.
    for short in range(1, 700):
        assert min(target_size(short, short + 17, 160)) == 160


def _jpeg(mode="RGB", size=(400, 300), fmt="JPEG", **save):
    arr = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    img = Image.fromarray(arr, "RGB").convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save)
    return buf.getvalue()


@pytest.mark.parametrize("mode,expected", [("RGB", "RGB"), ("L", "L"), ("CMYK", "RGB")])
def test_mode_policy(mode, expected):
    out = make_jpegs(_jpeg(mode), (160,), Recipe())[0]
    img = Image.open(io.BytesIO(out))
    assert img.format == "JPEG" and img.mode == expected and img.size == (213, 160)


@pytest.mark.parametrize("mode", ["P", "RGBA", "LA"])
def test_png_named_jpeg_and_alpha_palette_become_rgb_jpeg(mode):
    out = make_jpegs(_jpeg(mode, fmt="PNG"), (160,), Recipe())[0]
    img = Image.open(io.BytesIO(out))
    assert img.format == "JPEG" and img.mode == "RGB" and img.size == (213, 160)


def test_16bit_grayscale_keeps_its_range():
    arr = (np.arange(300 * 400, dtype=np.uint32).reshape(300, 400) % 65536).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    out = Image.open(io.BytesIO(make_jpegs(buf.getvalue(), (160,), Recipe())[0]))
    assert out.mode == "L"
    assert 20 < np.asarray(out).mean() < 235  # not clipped to white


def test_quality_changes_bytes_and_is_recorded():
    data = _jpeg()
    a = make_jpegs(data, (160,), Recipe(quality=75))[0]
    b = make_jpegs(data, (160,), Recipe(quality=95))[0]
    assert len(b) > len(a)
    assert Recipe(quality=95).to_json()["quality"] == 95


def test_dct_scale_keeps_twice_the_target_and_stops_at_half():
    assert dct_scale(500, 375, (213, 160)) == 1
    assert dct_scale(639, 639, (160, 160)) == 1        # 319 < 2 x 160
    assert dct_scale(1600, 1200, (213, 160)) == 2      # 800x600 >= 2 x 213x160
    assert dct_scale(2400, 1600, (240, 160)) == 2      # 1/4 would keep 600x400 too, but stops at 1/2
    assert dct_scale(5000, 5000, (160, 160)) == 2
    assert dct_scale(2400, 1600, (480, 320)) == 2
    assert dct_scale(2400, 1600, (720, 480)) == 1


@pytest.mark.parametrize("size", [(2400, 1600), (1836, 1377), (2600, 2600)])  # 1/4, 1/4, 1/8 at 160 before
def test_large_photo_at_160_and_320_is_decoded_once(monkeypatch, size):
    """Both sizes decode at 1/2 (entropy decoding is most of the cost, so one decode shared beats
    1/4 for 160 and 1/2 for 320), and each still gets the pixels it gets alone."""
    from imagenette_build import transform

    data = _jpeg(size=size, quality=80)
    opened = []
    real_open = transform.open_image
    monkeypatch.setattr(transform, "open_image", lambda d: opened.append(1) or real_open(d))
    both = transform.resize_pixels(data, (160, 320), Recipe())
    assert len(opened) == 1
    for s in (160, 320):
        alone = transform.resize_pixels(data, (s,), Recipe())[s]
        assert np.array_equal(np.asarray(both[s]), np.asarray(alone))


def _psnr(a, b):
    mse = np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2)
    return 99.0 if mse == 0 else 10 * np.log10(255 ** 2 / mse)


def test_scaled_decode_close_to_full_decode():
    # A smooth photo-like image: DCT scaling only drops detail the 160 px output cannot hold.
    from imagenette_build.samplegen import synthetic_jpeg, image_shape

    name = next(f"n01440764_{i}.JPEG" for i in range(10_000) if image_shape(f"n01440764_{i}.JPEG")[0][0] >= 1600)
    data = synthetic_jpeg(name)
    scaled = Image.open(io.BytesIO(make_jpegs(data, (160,), Recipe(decode="scaled", quality=100))[0]))
    full = Image.open(io.BytesIO(make_jpegs(data, (160,), Recipe(decode="full", quality=100))[0]))
    assert scaled.size == full.size
    assert _psnr(scaled, full) > 36


def test_multi_size_equals_single_size():
    from imagenette_build.samplegen import synthetic_jpeg, image_shape

    name = next(f"n01440764_{i}.JPEG" for i in range(10_000) if image_shape(f"n01440764_{i}.JPEG")[0][0] >= 1600)
    data = synthetic_jpeg(name)
    both = make_jpegs(data, (160, 320), Recipe())
    assert both[0] == make_jpegs(data, (160,), Recipe())[0]
    assert both[1] == make_jpegs(data, (320,), Recipe())[0]


def _decodes_whole(data: bytes) -> bool:
    """What the full-size check stands for: Pillow decodes the bytes without being told they are
    truncated (LOAD_TRUNCATED_IMAGES is off)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
        return True
    except Exception:  # noqa: BLE001 - any refusal
        return False


@pytest.mark.parametrize("progressive", [False, True])
def test_full_size_check_refuses_exactly_the_cuts_the_decoder_refuses(progressive):
    """Every cut of a JPEG (baseline and progressive: several scans) in its last 300 bytes, and
    tails appended after its end: check_full_size (which does not decode) accepts exactly what a
    full decode accepts. One known difference: a tail holding a start-of-scan marker after the end
    of image looks like a cut file to the check and is refused; the decoder stops at the EOI."""
    from imagenette_build.transform import check_full_size

    img = Image.fromarray(np.random.default_rng(3).integers(0, 255, (48, 64, 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80, progressive=progressive)
    data = buf.getvalue()
    cases = [data[:k] for k in range(len(data) - 300, len(data) + 1)]
    cases += [data + b"\0" * 10, data + b"\xff\xd9"]
    for case in cases:
        try:
            check_full_size(case)
            accepted = True
        except ValueError:
            accepted = False
        assert accepted == _decodes_whole(case), (len(case), len(data))
    assert _decodes_whole(data + b"junk\xff\xda\x00\x08")
    with pytest.raises(ValueError, match="truncated JPEG"):
        check_full_size(data + b"junk\xff\xda\x00\x08")


# ----------------------------------------------------------------------------- the published recipe


def _script(w: int, h: int, size: int) -> tuple[int, int]:
    """fast.ai's 2018 resize script, verbatim."""
    ratio = min(h / size, w / size)
    return int(w / ratio), int(h / ratio)


@pytest.mark.parametrize("size", [160, 320])
def test_geometry_is_the_scripts_for_the_published_sizes(size):
    for w in range(1, 401):
        for h in range(1, 401, 3):
            assert target_size(w, h, size) == _script(w, h, size), (w, h)


@pytest.mark.parametrize("w,h,size,script,floor", [
    (249, 166, 160, (239, 160), (240, 160)),   # 249 / (166 / 160) = 239.99999999999997
    (166, 415, 320, (320, 799), (320, 800)),
    (500, 375, 160, (213, 160), (213, 160)),
])
def test_float_edge_cases_follow_the_script(w, h, size, script, floor):
    assert target_size(w, h, size) == script == _script(w, h, size)
    assert target_size(w, h, size, "floor") == floor


def test_short_side_is_the_size_where_the_scripts_floats_fall_short():
    assert _script(9, 40, 224) == (223, 995)  # the script itself: one pixel short
    assert target_size(9, 40, 224) == (224, 995)
    assert target_size(9, 9, 224) == (224, 224)  # never a long side shorter than the short one


def _segments(jpeg: bytes) -> list[tuple[int, bytes]]:
    """(marker, payload) of every segment before the first scan."""
    out, i = [], 2
    assert jpeg[:2] == b"\xff\xd8"
    while True:
        marker = jpeg[i + 1]
        length = struct.unpack(">H", jpeg[i + 2:i + 4])[0]
        out.append((marker, jpeg[i + 4:i + 2 + length]))
        if marker == 0xDA:
            return out
        i += 2 + length


def test_output_carries_no_metadata_of_the_source():
    """Pillow >= 9.4 writes a source's COM back into the saved JPEG; the published images have
    no COM, EXIF, ICC or Adobe segment."""
    img = Image.fromarray(fk._pixels(300, 200))
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, comment=b"made by a camera", exif=exif.tobytes(),
             icc_profile=b"\0" * 200)
    source = buf.getvalue()
    assert {m for m, _ in _segments(source)} >= {0xFE, 0xE1, 0xE2}  # the source has them all
    [out] = make_jpegs(source, (160,), Recipe())
    markers = [m for m, _ in _segments(out)]
    assert markers == [0xE0, 0xDB, 0xDB, 0xC0, 0xC4, 0xC4, 0xC4, 0xC4, 0xDA]
    jfif = dict(_segments(out))[0xE0]
    assert jfif[:5] == b"JFIF\0" and jfif[5:7] == b"\x01\x01" and jfif[7:12] == b"\0\0\x01\0\x01"  # 1.01, units 0, 1:1


# ----------------------------------------------------------------------------- the pixel bounds (limits.py)


def _no_decode(monkeypatch):
    """Make any decode of the build's fail the test: a refusal must come from the header alone."""
    from imagenette_build import transform

    def decoded(*args, **kw):
        raise AssertionError("decoded an image that the header should have refused")
    monkeypatch.setattr(transform, "_decode_at", decoded)


@pytest.mark.parametrize("decode", ["full", "scaled"])
@pytest.mark.parametrize("w,h,size,message", [
    (2, 65_000, 160, "2 x 65000 px would be 160 x 5200000 at --size 160: more than 65,500 px a side (JPEG's limit)"),
    (5000, 1, 160, "5000 x 1 px would be 800000 x 160 at --size 160: more than 65,500 px a side (JPEG's limit)"),
    (1000, 5000, 8192, "1000 x 5000 px would be 8192 x 40960 at --size 8192: 335,544,320 px, more than a resized "
                       "image may have (89,478,485)"),
])
def test_an_image_that_would_resize_beyond_the_bound_is_refused_from_its_header(monkeypatch, w, h, size, message,
                                                                                decode):
    """A 16 kB JPEG of 2 x 65,000 px at 160 became 160 x 5,200,000: 6.8 GB for 27 s, then libjpeg's
    encoder refused it ("broken data stream when writing image file"). Now the target size is
    checked against the bound before anything is decoded, with a message naming both sizes."""
    from imagenette_build.transform import TooLarge

    data = fk.thin_jpeg(w, h) if size == 160 else fk.declared_jpeg(w, h)
    _no_decode(monkeypatch)
    with pytest.raises(TooLarge) as caught:
        make_jpegs(data, (size,), Recipe(decode=decode))
    assert str(caught.value) == message


# Thin and wide shapes are where the bound bites: one side 1..70,000, the other much smaller.
_sides = st.one_of(st.integers(1, 70_000), st.integers(1, 64), st.sampled_from([1, 2, 3, 65_500, 65_501, 70_000]))


@given(w=_sides, h=_sides, size=st.one_of(st.integers(1, MAX_SIZE), st.sampled_from([160, 320, MAX_SIZE])),
       rounding=st.sampled_from(ROUNDINGS))
def test_the_build_never_makes_an_image_verify_refuses(w, h, size, rounding):
    """For any source size and --size: either the build's check (before decoding) refuses the image
    with a one-line reason naming both sizes, or the image it makes is within the bound that verify
    applies to a member of a sized archive, which libjpeg can also encode."""
    from imagenette_build.transform import TooLarge, checked_targets, load_pixels

    try:
        targets = checked_targets(w, h, (size,), rounding)
    except TooLarge as exc:
        text = str(exc)
        assert "\n" not in text and text.startswith(f"{w} x {h} px would be ") and f"at --size {size}: " in text
        return
    tw, th = targets[size]
    assert min(tw, th) == size
    assert max(tw, th) <= 65_500 and tw * th <= 89_478_485  # libjpeg's JPEG_MAX_DIMENSION, Pillow's bound
    # verify's images level on a member of that size, from its header (the decode itself left out)
    with mock.patch.object(ImageFile.ImageFile, "load", lambda self: None):
        assert load_pixels(fk.declared_jpeg(tw, th), size).size == (tw, th)


def test_the_largest_size_fits_a_4_3_photo_and_one_more_would_not():
    from imagenette_build.limits import MAX_OUTPUT_PIXELS
    from imagenette_build.transform import TooLarge, checked_targets

    assert checked_targets(4000, 3000, (MAX_SIZE,)) == {MAX_SIZE: (10922, 8192)}
    assert 10922 * 8192 <= MAX_OUTPUT_PIXELS
    with pytest.raises(TooLarge):
        checked_targets(4000, 3000, (MAX_SIZE + 1,))


def test_the_side_bound_is_the_linked_libjpegs(capfd):
    """MAX_OUTPUT_SIDE is what the JPEG encoder accepts, no more, no less; and `encode` refuses
    beyond it itself, so libjpeg never prints its "Maximum supported image dimension is 65500
    pixels" on stderr (Pillow's encoder error handler does, before failing)."""
    from imagenette_build.limits import MAX_OUTPUT_SIDE
    from imagenette_build.transform import TooLarge, encode

    assert Image.open(io.BytesIO(encode(Image.new("L", (MAX_OUTPUT_SIDE, 1)), 75))).size == (MAX_OUTPUT_SIDE, 1)
    capfd.readouterr()
    with pytest.raises(TooLarge, match="1 x 65501 px: more than 65,500 px a side"):
        encode(Image.new("L", (1, MAX_OUTPUT_SIDE + 1)), 75)
    assert capfd.readouterr().err == ""
    with pytest.raises(OSError):  # (libjpeg itself: its line on stderr, and Pillow's "broken data stream")
        Image.new("L", (1, MAX_OUTPUT_SIDE + 1)).save(io.BytesIO(), "JPEG")
    assert "65500" in capfd.readouterr().err


@pytest.mark.parametrize("pil_bound", [None, 10**12])
def test_the_decode_bound_does_not_move_with_pils_global(monkeypatch, pil_bound):
    """Notebooks set Image.MAX_IMAGE_PIXELS = None; the build (in-process with --jobs 1 or the
    threading backend) then decoded any declared size. The bound is limits.MAX_DECODE_PIXELS."""
    from imagenette_build.transform import check_full_size, load_pixels

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pil_bound)
    _no_decode(monkeypatch)
    for check in (check_full_size, load_pixels, lambda d: make_jpegs(d, (160,), Recipe())):
        with pytest.raises(Image.DecompressionBombError, match="exceeds limit of 178956970 pixels"):
            check(fk.bomb_png())


def test_verify_refuses_a_sized_member_beyond_the_bound_from_its_header(monkeypatch):
    """A member of a sized archive declaring more than the build writes is refused unread (a
    520-byte progressive JPEG declaring 13,000 x 9,000 took 700 MB to decode); at full size the
    decode bound applies, as to the sources the build copies."""
    from imagenette_build.transform import TooLarge, load_pixels

    data = fk.declared_jpeg(13_000, 9_000, progressive=True)
    monkeypatch.setattr(Image.Image, "load", lambda self: pytest.fail("decoded"))
    with pytest.raises(TooLarge, match="13000 x 9000 px: 117,000,000 px, more than a resized image may have"):
        load_pixels(data, 160)
    monkeypatch.undo()
    assert load_pixels(fk.thin_jpeg(), None).size == (2, 65_000)  # a full-size member: the source's bytes


def test_only_the_listed_formats_are_opened_so_eps_never_runs_ghostscript(monkeypatch, tmp_path):
    """Pillow identifies an image by its content and loads EPS by running Ghostscript on it: a
    PostScript file named .JPEG, among the sources or in an archive given to verify or preview,
    ran `gs` (where installed) on whatever it holds; a loop in it hung the build. Only FORMATS are
    opened now, everywhere an image is."""
    from PIL import EpsImagePlugin

    from imagenette_build.contactsheet import thumbnail
    from imagenette_build.transform import check_full_size, describe_error, load_pixels

    ran = tmp_path / "gs-ran"
    gs = tmp_path / "gs"
    gs.write_text(f"#!/bin/sh\necho \"$@\" > {ran}\nexit 1\n")
    gs.chmod(0o755)
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", str(gs))
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (1, 2, 3)).save(buf, "EPS")
    eps = buf.getvalue()
    for use in (load_pixels, check_full_size, lambda d: make_jpegs(d, (32,), Recipe())):
        with pytest.raises(Image.UnidentifiedImageError) as caught:
            use(eps)
        assert describe_error(caught.value, eps) == ("not an image in a format read here: JPEG, PNG, GIF, TIFF, BMP, "
                                                     "PCX, TGA (starts with 25 21 50 53 2d 41 64 6f)")
    assert thumbnail(eps) is None
    assert not ran.exists()


def test_an_output_larger_than_an_archive_member_may_be_is_refused(monkeypatch):
    """verify reads members of at most MAX_MEMBER_BYTES; the build wrote larger ones (a 70 MB
    source copied at full size; a noisy image at --size 8192 --quality 95 is a 100 MB JPEG), so
    its own verify failed the archive. Here with the bound lowered."""
    from imagenette_build import transform
    from imagenette_build.transform import TooLarge, check_full_size

    data = fk.good_jpeg(300, 200)
    monkeypatch.setattr(transform, "MAX_MEMBER_BYTES", 2000)
    with pytest.raises(TooLarge, match=r"^its 240 x 160 px JPEG at --size 160 is [0-9,]+ bytes, more than an archive "
                                       r"member may have \(2,000\)$"):
        make_jpegs(data, (32, 160), Recipe())
    assert len(make_jpegs(data, (32,), Recipe())[0]) < 2000
    with pytest.raises(TooLarge, match=f"^{len(data):,} bytes, more than an archive member may have"):
        check_full_size(data)


def _with_scans(extra: int, mode: str = "L") -> bytes:
    """A 64 x 64 progressive JPEG with its last scan repeated `extra` times (31 bytes each)."""
    buf = io.BytesIO()
    Image.new(mode, (64, 64), 128).save(buf, "JPEG", progressive=True)
    data = buf.getvalue()
    last = data.rfind(b"\xff\xda")
    return data[:-2] + data[last:-2] * extra + data[-2:]


def test_a_progressive_jpeg_of_too_many_scans_is_refused_unread(monkeypatch):
    """Each scan of a progressive JPEG is a pass over the whole image, and a scan costs 31 bytes: a
    1 MB file of 30,000 scans declaring 13,377 px square held a worker for over an hour (the
    build, verify of a downloaded archive, preview). More than MAX_JPEG_SCANS is refused from the
    bytes, before decoding; libjpeg's own progressions (6 to 18 scans) decode."""
    from imagenette_build.limits import MAX_JPEG_SCANS
    from imagenette_build.transform import check_full_size, load_pixels

    ok = _with_scans(MAX_JPEG_SCANS - 6)  # a grey progression is 6 scans
    assert ok.count(b"\xff\xda") == MAX_JPEG_SCANS
    assert load_pixels(ok).size == (64, 64)
    assert load_pixels(_with_scans(0, "CMYK")).size == (64, 64)  # 18 scans
    too_many = _with_scans(MAX_JPEG_SCANS - 5)
    monkeypatch.setattr(Image.Image, "load", lambda self: pytest.fail("decoded"))
    for use in (load_pixels, check_full_size, lambda d: make_jpegs(d, (32,), Recipe())):
        with pytest.raises(ValueError, match="^a progressive JPEG of 101 scans, more than the 100 decoded"):
            use(too_many)


def test_a_header_of_too_many_pieces_is_refused_before_its_parse_runs_away():
    """Pillow parses a JPEG's segments (a PNG's chunks, a GIF's blocks) one by one in Python and
    keeps each: a 60 MiB member of 15 million empty comments took 18 s and 1.2 GB in a verify
    worker before any pixel. Image.open now gets MAX_HEADER_READS reads; real headers, large
    metadata included, need far fewer."""
    from imagenette_build.transform import load_pixels

    base = fk.good_jpeg(64, 48)
    with pytest.raises(ValueError, match="^a header of more than 20,000 segments, chunks or blocks before the image "
                                         r"data \(an image's has a few dozen\)$"):
        load_pixels(base[:2] + b"\xff\xfe\x00\x02" * 10_000 + base[2:])
    assert load_pixels(base[:2] + b"\xff\xfe\x00\x02" * 1_000 + base[2:]).size == (64, 48)
    buf = io.BytesIO()
    Image.new("RGB", (64, 48)).save(buf, "JPEG", icc_profile=b"\0" * 1_000_000, exif=b"Exif\0\0" + b"\0" * 60_000,
                                    comment=b"c" * 60_000)
    assert load_pixels(buf.getvalue()).size == (64, 48)
    buf = io.BytesIO()
    Image.new("P", (64, 48)).save(buf, "GIF", comment=b"x" * 1_000_000)
    assert load_pixels(buf.getvalue()).size == (64, 48)
