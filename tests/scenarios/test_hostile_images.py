"""Hostile source images and members: thin images that a resize would enlarge beyond what a JPEG can
hold, sizes beyond the bound, members whose header declares more than the build writes, files larger
than a member may be, PostScript named .JPEG. One set of bounds (limits.py) for the build and verify:
the build refuses such an image from its header, naming it, in bounded memory (measured in a child
process), and never writes a member that verify refuses."""

from __future__ import annotations

import gc
import io
import json
import math
import os
import subprocess
import sys
import tarfile
import tracemalloc
import weakref
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .. import faultkit as fk
from .test_hostile_verify import _MEASURE, END, WNID, GzipFile, check, level, problem_lines, tar_of

GUARD = 3 << 30  # RLIMIT_AS of a measured run: the build before the fix (6.8 GB) fails in the child
PEAK_MIB = 1024  # generous: a build of the sample takes ~200 MiB; the thin image alone took 6.8 GB


def measured(tmp_path: Path, *args) -> tuple[subprocess.CompletedProcess, int]:
    """The CLI with `args`, and the peak RSS in MiB of the largest of its processes."""
    peak = tmp_path / "peak-rss-kib"
    r = subprocess.run([sys.executable, "-c", _MEASURE, str(GUARD), str(peak), *map(str, args)],
                       capture_output=True, text=True, timeout=120, preexec_fn=fk.default_sigint)
    return r, int(peak.read_text()) >> 10


def _planted(sample, tmp_path: Path, data: bytes) -> tuple[Path, Path, Path]:
    """A copy of the sample ImageNet with `data` in place of a listed image: (root, manifest, image)."""
    root, manifest_path = sample
    copy = fk.copy_imagenet(root, tmp_path / "imagenet")
    victim = fk.class_files(copy, "train", "n02102040")[0]
    victim.write_bytes(data)
    return copy, manifest_path, victim


@pytest.mark.parametrize("w,h,why", [
    (2, 65_000, "2 x 65000 px would be 160 x 5200000 at --size 160: more than 65,500 px a side (JPEG's limit)"),
    (5_000, 1, "5000 x 1 px would be 800000 x 160 at --size 160: more than 65,500 px a side (JPEG's limit)"),
])
def test_a_thin_image_is_refused_from_its_header_naming_it(sample, tmp_path, w, h, why):
    """A valid 16 kB JPEG of 2 x 65,000 px at a listed path, built at 160: the output would have
    been 160 x 5,200,000 px; the build held 6.8 GB for 27 s, then failed with "broken data stream
    when writing image file" and libjpeg's own unprefixed line on stderr (1 x 5,000: 1.2 GB). Now:
    one line naming the image and why, nothing written, in the memory of a build of the sample;
    --skip-broken leaves it out with that reason. At full size it is a legitimate copy, which
    verify passes."""
    copy, manifest_path, victim = _planted(sample, tmp_path, fk.thin_jpeg(w, h))
    out = tmp_path / "out"
    args = ("--imagenet", copy, "--manifest", manifest_path, "--out", out, "-q", "--jobs", "2")
    r, peak = measured(tmp_path, *args, "--size", "160")
    fk.one_line_error(r, 1, "1 source images could not be read", f"{victim}: {why}")
    assert peak < PEAK_MIB, f"peak RSS {peak} MiB"
    assert not list(out.glob("*.tgz")) and not (out / "SHA256SUMS").exists()
    fk.assert_consistent(out)

    r, peak = measured(tmp_path, *args, "--size", "160", "--skip-broken", "--json")
    assert r.returncode == 0, r.stderr
    assert peak < PEAK_MIB, f"peak RSS {peak} MiB"
    member = str(victim.relative_to(copy))
    assert json.loads(r.stdout)["skipped"] == [{"member": member, "source": str(victim), "reason": f"{victim}: {why}"}]
    assert r.stderr.splitlines()[1:] == [f"  skipped {member}: {victim}: {why}"], r.stderr
    fk.assert_consistent(out)

    r = subprocess.run(fk.cli_command(*args, "--size", "full"), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    archive = out / "imagenette2-sample.tgz"
    with tarfile.open(archive) as tar:
        assert tar.extractfile(f"imagenette2-sample/{member}").read() == victim.read_bytes()
    r = subprocess.run(fk.cli_command("verify", archive, "--manifest", manifest_path, "-q", "-j", "1"),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout


def test_verify_does_not_regenerate_a_member_from_a_thin_source(sample, tmp_path, built):
    """verify --imagenet regenerates each member from its source: a thin image planted in the
    ImageNet copy took the build's 6.8 GB there too. Now the source level names it, in bounded
    memory."""
    archive = built[2] / "imagenette2-sample-160.tgz"
    copy, manifest_path, victim = _planted(sample, tmp_path, fk.thin_jpeg())
    r, peak = measured(tmp_path, "verify", archive, "--manifest", manifest_path, "--imagenet", copy, "-q", "-j", "2",
                       "--recipe-sample", "0")
    assert r.returncode == 1 and r.stderr == "", r.stderr
    why = f"{victim}: 2 x 65000 px would be 160 x 5200000 at --size 160: more than 65,500 px a side"
    assert any(ln.startswith("1 sources could not be read or regenerated: ") and why in ln
               for ln in problem_lines(r.stdout)), r.stdout
    assert peak < PEAK_MIB, f"peak RSS {peak} MiB"


def _tiny_imagenet(root: Path) -> Path:
    """One class, two tiny 4:3 photos (one landscape, one portrait), and a manifest keeping
    ImageNet's split: what --size 8192 enlarges to 10922 x 8192, the most a resized image may be."""
    for split, name, size in (("train", f"{WNID}_1.JPEG", (40, 30)), ("val", "ILSVRC2012_val_00000001.JPEG", (30, 40))):
        (root / split / WNID).mkdir(parents=True)
        (root / split / WNID / name).write_bytes(fk.good_jpeg(*size))
    manifest = root / "tiny.toml"
    manifest.write_text('name = "tiny"\nstem = "tiny"\n\n[split]\npolicy = "imagenet"\n\n'
                        '[noisy_labels]\nenabled = false\n\n'
                        f'[[classes]]\nwnid = "{WNID}"\n')
    return manifest


def test_sizes_beyond_the_bound_are_refused_and_the_largest_builds_what_verify_passes(tmp_path):
    """--size 16384 built archives that the tool's own verify failed (members over verify's pixel
    bound, 3.4 GB in one worker). Sizes are now 1..8192, where a 4:3 photo is 10922 x 8192: within
    the bound that build and verify share."""
    root = tmp_path / "imagenet"
    manifest = _tiny_imagenet(root)
    out = tmp_path / "out"
    args = ("--imagenet", root, "--manifest", manifest, "--out", out, "-q", "--jobs", "1")
    r = subprocess.run(fk.cli_command(*args, "--size", "16384", "--dry-run"), capture_output=True, text=True,
                       timeout=60)
    fk.one_line_error(r, 2, "16384 is out of range: sizes are 1..8192 pixels")
    r, peak = measured(tmp_path, *args, "--size", "8192", "--no-cache")
    assert r.returncode == 0, r.stderr
    assert peak < 2 * PEAK_MIB, f"peak RSS {peak} MiB"  # (about 870 MiB: two images of 10922 x 8192)
    archive = out / "tiny-8192.tgz"
    report = check(archive, manifest=str(manifest))
    assert report.passed, [lv.problems for lv in report.levels]
    assert level(report, "images").summary.startswith("2 of 2 decode fully; shortest side 8192 px")


def test_verify_refuses_a_member_declaring_more_than_the_build_writes_unread(tmp_path):
    """A 520-byte progressive JPEG declaring 13,000 x 9,000 px in a sized archive was decoded
    (117 Mpx, about 1 GB in a worker, under Pillow's decompression-bomb bound). A sized archive's
    member is now held to what the build writes, from its header; a full-size archive's members to
    what the build copies (a thin JPEG of 2 x 65,000 px passes there)."""
    sized = tmp_path / "x-160.tgz"
    GzipFile().add(tar_of([(f"x-160/train/{WNID}/0.JPEG", fk.declared_jpeg(13_000, 9_000, progressive=True)),
                           (f"x-160/train/{WNID}/1.JPEG", fk.good_jpeg(240, 160))]) + END).write(sized)
    r, peak = measured(tmp_path, "verify", sized, "-q", "-j", "2")
    assert r.returncode == 1 and r.stderr == "", r.stderr
    assert (f"1 members larger than the build writes (not decoded): x-160/train/{WNID}/0.JPEG (13000 x 9000 px: "
            "117,000,000 px, more than a resized image may have (89,478,485))") in problem_lines(r.stdout)
    assert peak < 300, f"peak RSS {peak} MiB"
    images = level(check(sized), "images")
    assert images.data["too_large"] == 1 and images.data["decode_errors"] == 0
    assert images.summary.startswith("1 of 2 decode fully")

    full = tmp_path / "x.tgz"
    GzipFile().add(tar_of([(f"x/train/{WNID}/0.JPEG", fk.thin_jpeg())]) + END).write(full)
    images = level(check(full), "images")
    assert images.passed, images.problems


def _eps() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (1, 2, 3)).save(buf, "EPS")
    return buf.getvalue()


def test_a_postscript_file_named_jpeg_never_runs_ghostscript(sample, tmp_path):
    """Pillow opens an image by its content, and loads EPS by running Ghostscript on the file: with
    `gs` installed, a PostScript file named .JPEG in the ImageNet copy, or as a member of an archive
    given to verify or preview, was run (here a stand-in `gs` on PATH records it; a loop in the
    file hangs a real one). Such a file is now not an image: refused unopened, one line."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    ran = tmp_path / "gs-ran"
    (bin_dir / "gs").write_text(f"#!/bin/sh\necho \"$@\" >> {ran}\n")
    (bin_dir / "gs").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    copy, manifest_path, victim = _planted(sample, tmp_path, _eps())
    out = tmp_path / "out"
    for size in ("32", "full"):
        r = subprocess.run(fk.cli_command("--imagenet", copy, "--manifest", manifest_path, "--size", size, "--out", out,
                                          "-q", "--jobs", "2"), capture_output=True, text=True, timeout=120, env=env)
        fk.one_line_error(r, 1, f"{victim}: not an image in a format read here: JPEG, PNG, GIF, TIFF, BMP, PCX, TGA "
                                "(starts with 25 21 50 53")
    archive = GzipFile().add(tar_of([(f"e-32/train/{WNID}/0.JPEG", _eps())]) + END).write(tmp_path / "e-32.tgz")
    r = subprocess.run(fk.cli_command("verify", archive, "-q", "-j", "1"), capture_output=True, text=True,
                       timeout=120, env=env)
    assert r.returncode == 1 and r.stderr == "", r.stderr
    assert any(ln.startswith("1 members do not decode: ") for ln in problem_lines(r.stdout)), r.stdout
    r = subprocess.run(fk.cli_command("preview", archive, "-o", tmp_path / "sheet.png"), capture_output=True,
                       text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr  # a sheet without that image
    assert not ran.exists(), ran.read_text()


def test_a_source_larger_than_an_archive_member_is_refused_at_full_size(sample, tmp_path):
    """A 70 MB source (a JPEG followed by zeros, which decoders ignore) was copied at full size, and
    the tool's own verify then failed the archive: it reads no member over 64 MiB. The build now
    refuses it there, naming it; a resized copy of it is an ordinary image."""
    copy, manifest_path, victim = _planted(sample, tmp_path, fk.good_jpeg() + bytes(70 << 20))
    out = tmp_path / "out"
    args = ("--imagenet", copy, "--manifest", manifest_path, "--out", out, "-q", "--jobs", "2")
    r = subprocess.run(fk.cli_command(*args, "--size", "full"), capture_output=True, text=True, timeout=120)
    fk.one_line_error(r, 1, f"{victim}: {victim.stat().st_size:,} bytes, more than an archive member may have "
                            "(67,108,864)")
    assert not list(out.glob("*.tgz"))
    r = subprocess.run(fk.cli_command(*args, "--size", "32"), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert check(out / "imagenette2-sample-32.tgz", manifest=str(manifest_path)).passed


# ------------------------------------------------------------------------------ verify's work on a large member


def test_pixel_difference_works_in_bands_and_gives_the_same_psnr():
    """verify --imagenet compares a member with its regeneration; whole-image int16 and float64
    copies took 3.6 GB for a 10922 x 8192 member (the largest the build makes). In bands of rows,
    the memory numpy holds stays under one image's bytes, and the PSNR is the whole-image one."""
    from imagenette_build.verifier.checks import pixel_difference

    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (1100, 1500, 3), dtype=np.uint8)
    y = np.clip(x.astype(np.int16) + rng.integers(-4, 5, x.shape), 0, 255).astype(np.uint8)
    a, b = Image.fromarray(x), Image.fromarray(y)
    tracemalloc.start()
    try:
        psnr, peak, note = pixel_difference(a, b)
        _, held = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < x.nbytes, held  # the whole-image version: over 20 times that
    mse = np.mean(np.square(x.astype(np.float64) - y))
    assert (psnr, peak, note) == (10 * math.log10(255 ** 2 / mse), 4, "")
    assert pixel_difference(a, a)[:2] == (math.inf, 0)


def test_the_recipe_sweep_holds_one_resized_image_at_a_time(monkeypatch):
    """The sweep (verify --imagenet, sampled members) kept every filter x rounding's resize until
    the member was done: 24 of them, 6 GB at --size 8192. Now one at a time, same PSNRs."""
    from imagenette_build.transform import Recipe
    from imagenette_build.verifier import checks

    grid = tuple(Recipe(f, q, r) for f in ("bicubic", "lanczos") for r in ("script", "floor") for q in (75, 90))
    spec = checks.CheckSpec(64, Recipe(), grid[::-1])  # the build's recipe first, then the rest: keys interleave
    src = fk.good_jpeg(300, 200)
    member = checks.load_pixels(checks.make_jpegs(src, (64,), Recipe())[0])
    alive: list[weakref.ref] = []
    real = checks.resize_pixels

    def resize_pixels(*args):
        gc.collect()
        assert all(ref() is None for ref in alive), "an earlier resize is still held"
        out = real(*args)
        alive.append(weakref.ref(out[64]))
        return out
    monkeypatch.setattr(checks, "resize_pixels", resize_pixels)
    swept = checks._sweep(member, src, spec)
    monkeypatch.undo()
    assert len(alive) == 4
    assert swept == tuple(checks.pixel_difference(member, checks.load_pixels(checks.make_jpegs(src, (64,), r)[0]))[0]
                          for r in spec.grid)


def test_a_recipe_of_the_sweep_that_cannot_make_the_image_scores_0_db(monkeypatch):
    """At --size 8192 a 4:3 photo is 10922 x 8192 as built, but 10923 x 8192 with the sweep's `ceil`
    and `round` roundings: over the bound, so the sweep's TooLarge failed the member's whole source
    comparison ("2 sources could not be read or regenerated" for an archive the build had just
    made). Such a recipe now scores 0 dB. Here at 64 px, with the pixel bound lowered to match."""
    from imagenette_build import transform
    from imagenette_build.transform import Recipe, target_size
    from imagenette_build.verifier import checks

    assert target_size(40, 30, 8192) == (10922, 8192) and target_size(40, 30, 8192, "ceil") == (10923, 8192)
    assert target_size(40, 30, 64) == (85, 64) and target_size(40, 30, 64, "ceil") == (86, 64)
    monkeypatch.setattr(transform, "MAX_OUTPUT_PIXELS", 85 * 64)
    src = fk.good_jpeg(40, 30)
    member = checks.load_pixels(checks.make_jpegs(src, (64,), Recipe())[0])
    grid = (Recipe(), Recipe(rounding="ceil"), Recipe(quality=90), Recipe(rounding="ceil", quality=90))
    swept = checks._sweep(member, src, checks.CheckSpec(64, Recipe(), grid))
    assert swept[0] == math.inf and swept[2] > 0 and swept[1] == swept[3] == 0.0
