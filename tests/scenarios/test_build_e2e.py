"""The README's user stories, end to end through the real command line."""

import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import tarfile
from pathlib import Path

import pytest
from PIL import Image

from imagenette_build import manifest as manifests
from imagenette_build.transform import target_size

from ..conftest import run_cli


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def listed_members(manifest_path):
    m = manifests.load_path(Path(manifest_path))
    return {f"{m.stem}/{li.member}" for li in m.listed_images()}, m


def test_member_list_is_exactly_the_manifest(built):
    root, manifest_path, out = built
    expected, m = listed_members(manifest_path)
    for stem in (f"{m.stem}-160", m.stem):
        with tarfile.open(out / f"{stem}.tgz") as tar:
            members = tar.getmembers()
        files = {t.name.replace(stem, m.stem, 1) for t in members if t.isfile()}
        assert files == expected | {f"{m.stem}/noisy_imagenette.csv"}
        assert {t.name.split("/")[0] for t in members} == {stem}
        assert all(t.uid == 0 and t.gid == 0 and t.uname == "" and t.mtime == 1612569600 for t in members)
        assert all(t.mode == (0o755 if t.isdir() else 0o644) for t in members)


def test_root_file_is_the_list_verbatim(built):
    root, manifest_path, out = built
    with tarfile.open(out / "imagenette2-sample.tgz") as tar:
        data = tar.extractfile("imagenette2-sample/noisy_imagenette.csv").read()
    assert data == (Path(manifest_path).parent / "noisy_imagenette.csv").read_bytes()


def test_every_image_has_shortest_side_160_and_mode_kept(built):
    root, manifest_path, out = built
    checked = 0
    with tarfile.open(out / "imagenette2-sample-160.tgz") as tar:
        for t in tar:
            if not t.isfile() or not t.name.endswith(".JPEG"):
                continue
            img = Image.open(io.BytesIO(tar.extractfile(t).read()))
            _, split, wnid, name = t.name.split("/")
            src = Image.open(root / ("train" if not name.startswith("ILSVRC") else "val") / wnid / name)
            assert img.format == "JPEG"
            assert img.size == target_size(*src.size, 160)
            assert min(img.size) == 160
            assert img.mode == ("L" if src.mode == "L" else "RGB")
            checked += 1
    assert checked == 50


def test_full_size_bytes_identical_to_source(built):
    root, _, out = built
    n = 0
    with tarfile.open(out / "imagenette2-sample.tgz") as tar:
        for t in tar:
            if t.isfile() and t.name.endswith(".JPEG"):
                _, split, wnid, name = t.name.split("/")
                src = root / ("val" if name.startswith("ILSVRC") else "train") / wnid / name
                assert tar.extractfile(t).read() == src.read_bytes()
                n += 1
    assert n == 50


def test_checksums_verify_with_coreutils(built):
    _, _, out = built
    for tool, sums in (("sha256sum", "SHA256SUMS"), ("md5sum", "MD5SUMS")):
        r = subprocess.run([tool, "-c", sums], cwd=out, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.count(": OK") == 8  # two archives, each with its provenance, card and contact sheet
        assert r.stdout.count(".tgz: OK") == 2


def test_report(built):
    _, _, out = built
    report = json.loads((out / "imagenette2-sample-160.json").read_text())
    assert report["sha256"] == sha256(out / "imagenette2-sample-160.tgz")
    assert report["archive_bytes"] == (out / "imagenette2-sample-160.tgz").stat().st_size
    assert report["images"] == 50
    assert sum(report["counts"]["train"].values()) == 40 and sum(report["counts"]["val"].values()) == 10
    assert report["options"]["recipe"] == {"filter": "bicubic", "quality": 75, "rounding": "script", "decode": "full",
                                           "name": "fastai-2018", "published": True}
    assert report["fidelity"] == {"recipe": "fastai-2018", "published_recipe": True,
                                  "published_bytes_possible": True, "problems": []}
    assert report["toolchain"]["pillow_flavour"] in ("pillow-simd", "Pillow")
    assert report["toolchain"]["resampler"].startswith(
        "pillow-simd" if report["toolchain"]["pillow_flavour"] == "pillow-simd" else "imagenette-build's port")
    listed = (out / report["members_sha256"]["file"]).read_bytes()
    assert hashlib.sha256(listed).hexdigest() == report["members_sha256"]["sha256"]
    assert len(listed.splitlines()) == 51  # 50 images and the root CSV
    with gzip.open(out / "imagenette2-sample-160.tgz") as f:
        assert hashlib.sha256(f.read()).hexdigest() == report["tar_sha256"]
    assert "level 0" not in report["toolchain"]["compressor"]


def test_full_size_archive_is_stored_not_compressed(built):
    """The sources' JPEG bytes do not deflate: the full-size archive is a standard .tgz of stored
    deflate blocks, and its report says so."""
    _, _, out = built
    path = out / "imagenette2-sample.tgz"
    raw = path.read_bytes()
    assert (raw[10] >> 1) & 3 == 0  # the first deflate block's BTYPE: 00, stored
    with gzip.open(path) as f:
        tar_bytes = f.read()
    assert len(tar_bytes) < len(raw) < len(tar_bytes) * 1.001 + 100  # a few bytes per 64 KiB block
    report = json.loads((out / "imagenette2-sample.json").read_text())
    assert hashlib.sha256(tar_bytes).hexdigest() == report["tar_sha256"]
    assert "stored deflate blocks" in report["toolchain"]["compressor"]


def test_gzip_header_is_fixed(built):
    _, _, out = built
    head = (out / "imagenette2-sample-160.tgz").read_bytes()[:10]
    assert head == bytes([0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 0xFF])


def test_same_bytes_whatever_jobs_backend_or_layout(built, sample_layouts, tmp_path):
    _, manifest_path, out = built
    reference = {n: sha256(out / n) for n in ("imagenette2-sample-160.tgz", "imagenette2-sample.tgz")}
    runs = [("folders", "1", "loky"), ("flat-devkit", "2", "threading"), ("kaggle", "2", "loky"),
            ("flat-kaggle-csv", "1", "loky")]
    for layout, jobs, backend in runs:
        root, _ = sample_layouts[layout]
        dest = tmp_path / f"{layout}-{jobs}"
        r = run_cli("--imagenet", root, "--manifest", manifest_path, "--size", "160", "--size", "full",
                    "--out", dest, "--jobs", jobs, "--backend", backend, "-q")
        assert r.returncode == 0, r.stderr
        assert {n: sha256(dest / n) for n in reference} == reference, (layout, jobs, backend)


def test_source_date_epoch_sets_mtime(sample, tmp_path):
    root, manifest_path = sample
    env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000")
    r = run_cli("--imagenet", root, "--manifest", manifest_path, "--size", "32", "--out", tmp_path, "-q", env=env)
    assert r.returncode == 0, r.stderr
    with tarfile.open(tmp_path / "imagenette2-sample-32.tgz") as tar:
        assert {t.mtime for t in tar} == {1700000000}


def test_sums_are_merged_not_clobbered(built, sample, tmp_path):
    root, manifest_path = sample
    for size in ("64", "96"):
        r = run_cli("--imagenet", root, "--manifest", manifest_path, "--size", size, "--out", tmp_path, "-q")
        assert r.returncode == 0, r.stderr
    lines = (tmp_path / "SHA256SUMS").read_text().splitlines()
    assert [ln.split("  ")[1] for ln in lines] == [f"imagenette2-sample-{size}.{name}" for size in ("64", "96")
                                                   for name in ("README.md", "preview.png", "provenance.csv", "tgz")]
    assert subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=tmp_path).returncode == 0


def test_dry_run_writes_nothing_and_json_plan(sample, tmp_path):
    root, manifest_path = sample
    out = tmp_path / "never"
    r = run_cli("--imagenet", root, "--manifest", manifest_path, "--out", out, "--dry-run", "--json", "-q")
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    assert plan["images"] == 50 and plan["missing"] == 0 and plan["complete"] is True
    assert not out.exists()
    # every name a build puts in place: the outputs with their documents, the report, the sums files
    stem = f"{out}/imagenette2-sample-"
    assert plan["would_write"] == [f"{stem}{s}.{n}" for s in (160,)
                                   for n in ("tgz", "members.sha256", "provenance.csv", "README.md", "preview.png", "json")] \
        + [f"{out}/SHA256SUMS", f"{out}/MD5SUMS"]
    r = run_cli("--imagenet", root, "--manifest", manifest_path, "--out", out, "--dry-run", "--size", "160",
                "--format", "parquet", "-q")
    assert f"  would write {stem}160-parquet/\n" in r.stdout and f"{stem}160.README.md" not in r.stdout


def test_whole_published_list_is_planned_exactly(tmp_path):
    """Every one of the 13,394 published imagenette2 paths, found in an extracted layout
    (empty files: the plan never reads image bytes)."""
    _plan_whole_published_list(tmp_path, "imagenette2", {"train": 9469, "val": 3925})


def test_imagewoof2_by_name_plans_its_whole_published_list(tmp_path):
    """`--manifest imagewoof2`: the built-in manifest, by name, and its 12,954 published paths."""
    _plan_whole_published_list(tmp_path, "imagewoof2", {"train": 9025, "val": 3929}, "--manifest", "imagewoof2")


def _plan_whole_published_list(tmp_path, name, counts, *args):
    m = manifests.load(name)
    for li in m.listed_images():
        split = "val" if li.filename.startswith("ILSVRC2012_val_") else "train"
        d = tmp_path / split / li.wnid
        d.mkdir(parents=True, exist_ok=True)
        (d / li.filename).touch()
    r = run_cli("--imagenet", tmp_path, *args, "--dry-run", "--json", "-q")
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    assert plan["manifest"] == name and plan["images"] == sum(counts.values()) and plan["missing"] == 0
    assert {s: sum(c.values()) for s, c in plan["counts"].items()} == counts


# ----------------------------------------------------------------------------- error paths


def _one_line_error(r, code, *needles):
    assert r.returncode == code, (r.returncode, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("imagenette-build: error:"), r.stderr
    assert "Traceback" not in r.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])


def test_missing_images_exit_1_and_nothing_written(sample, tmp_path):
    root, manifest_path = sample
    copy = tmp_path / "imagenet"
    subprocess.run(["cp", "-r", str(root), str(copy)], check=True)
    victim = next((copy / "train" / "n01440764").iterdir())
    victim.unlink()
    out = tmp_path / "out"
    r = run_cli("--imagenet", copy, "--manifest", manifest_path, "--out", out, "-q")
    _one_line_error(r, 1, "1 of 50 listed images are missing", victim.name)
    assert not out.exists() or not any(out.iterdir())


def test_corrupt_image_exit_1_and_no_archive(sample, tmp_path):
    root, manifest_path = sample
    copy = tmp_path / "imagenet"
    subprocess.run(["cp", "-r", str(root), str(copy)], check=True)
    victim = sorted((copy / "train" / "n03888257").iterdir())[0]
    victim.write_bytes(b"not a jpeg at all")
    out = tmp_path / "out"
    r = run_cli("--imagenet", copy, "--manifest", manifest_path, "--out", out, "-q")
    _one_line_error(r, 1, "could not be read", str(victim))
    # not even a temporary file; only the cache of the images that were resized (so that a rerun
    # after fixing the image redoes only that one)
    assert [p.name for p in out.iterdir()] == [".imagenette-cache"]


@pytest.mark.parametrize("args,code,needle", [
    (["--size", "abc"], 2, "'abc' is not a size"),
    (["--size", "0"], 2, "out of range"),
    (["--jobs", "0"], 2, "--jobs"),
    (["--filter", "magic"], 2, "--filter"),
    (["--manifest", "nope"], 2, "unknown manifest 'nope'"),
    (["--manifest", "missing.toml"], 2, "missing.toml: manifest file not found"),
])
def test_usage_errors_exit_2_in_one_line(sample, args, code, needle):
    root, _ = sample
    _one_line_error(run_cli("--imagenet", root, *args, "--dry-run"), code, needle)


def test_imagenet_path_errors(tmp_path):
    _one_line_error(run_cli("--imagenet", tmp_path / "absent", "--dry-run"), 2, "no such folder")
    f = tmp_path / "file"
    f.write_text("x")
    _one_line_error(run_cli("--imagenet", f, "--dry-run"), 2, "is a file")
    _one_line_error(run_cli("--imagenet", tmp_path, "--dry-run"), 2, "no ImageNet layout found", "train/<wnid>/")


def test_out_is_a_file(sample, tmp_path):
    root, manifest_path = sample
    f = tmp_path / "out"
    f.write_text("x")
    _one_line_error(run_cli("--imagenet", root, "--manifest", manifest_path, "--out", f, "-q"), 2, "is a file")


def test_version_and_help():
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("imagenette-build 0.1.0 (")
    assert "pillow" in r.stdout.lower() and "libjpeg" in r.stdout
    r = run_cli("--help")
    assert r.returncode == 0 and "imagenette-build --imagenet /data/imagenet --size 160" in r.stdout
    r = run_cli("build", "--help")
    assert r.returncode == 0 and "Examples:" in r.stdout and "Exit codes" in r.stdout


def test_progress_bars_on_stderr_without_quiet(sample, tmp_path):
    root, manifest_path = sample
    r = run_cli("--imagenet", root, "--manifest", manifest_path, "--size", "32", "--out", tmp_path)
    assert r.returncode == 0
    assert r.stdout.startswith("wrote ") and len(r.stdout.splitlines()) == 1  # the result: what a script reads
    for phase in ("scan", "resize", "pack"):
        assert phase in r.stderr


def test_a_build_says_what_it_wrote_on_stdout_even_when_quiet(sample, tmp_path):
    """`--quiet` hid the "wrote ..." lines too, and a build wrote nothing to stdout, where a script
    reads; the sample's manifest said it was imagenette2 itself; sample-imagenet's count left out
    the decoys its bar counted."""
    root, manifest_path = sample
    r = run_cli("--imagenet", root, "--manifest", manifest_path, "--size", "32", "--out", tmp_path, "-q",
                "--no-cache")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert r.stdout.splitlines() == [line for line in r.stdout.splitlines() if line.startswith("wrote ")]
    assert r.stdout.startswith(f"wrote {tmp_path / 'imagenette2-sample-32.tgz'} (")
    assert "sample of imagenette2" in manifests.load_path(manifest_path).description
    r = run_cli("sample-imagenet", tmp_path / "s", "--per-class", "1")
    assert r.returncode == 0
    line = next(ln for ln in r.stderr.splitlines() if ln.startswith("wrote "))
    assert "images to" in line and "decoys of other classes" in line
    bar_total = re.findall(r"\| *\d+/(\d+) ", r.stderr)[-1]
    assert line.startswith(f"wrote {int(bar_total):,} images")
