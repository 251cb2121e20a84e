"""`imagenette-build verify`: good archives pass every level; each kind of damage fails at its level
and names the member; hostile archives are refused without a traceback or a write."""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import shutil
import tarfile
from pathlib import Path

import pytest
from PIL import Image

from imagenette_build.archive_reader import Digests
from imagenette_build.published import read_published
from imagenette_build.transform import Recipe
from imagenette_build.verifier import RecipeGrid, VerifyOptions, check as run_check
from imagenette_build.verifier.checks import pixel_difference
from imagenette_build.verifier.identity import matches_upload, published_match_message
from imagenette_build.verifier.target import infer_manifest, variant_size

from ..conftest import run_cli

STEM = "imagenette2-sample-160"
# Members every test below tampers with (the sample's first train image, and a val image).
VICTIM = f"{STEM}/train/n01440764/n01440764_10744.JPEG"
VAL_VICTIM = f"{STEM}/val/n03888257/n03888257_4842.JPEG"


def check(archive, manifest_path, imagenet=None, **kw):
    """verify in-process: one job, no bar, no recipe sweep unless asked."""
    kw.setdefault("grid", RecipeGrid(sample=0))
    return run_check(VerifyOptions(Path(archive), manifest=str(manifest_path), imagenet=imagenet, jobs=1,
                                quiet=True, **kw))


def level(report, name):
    return next(lv for lv in report.levels if lv.name == name)


def failed(report):
    return [lv.name for lv in report.levels if not lv.passed]


def rewrite(src, dest, edit=lambda info, data: [(info, data)], extra=()):
    """Copy an archive member by member through `edit(info, data) -> [(info, data), ...]`, then add
    `extra`; written by Python's tarfile into a folder with no sums or report beside it."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(src, "r:gz") as tin, tarfile.open(dest, "w:gz") as tout:
        for info in tin:
            data = tin.extractfile(info).read() if info.isfile() else None
            for new_info, new_data in edit(info, data):
                _add(tout, new_info, new_data)
        for new_info, new_data in extra:
            _add(tout, new_info, new_data)
    return dest


def _add(tar, info, data):
    if data is not None:
        info.size = len(data)
    tar.addfile(info, io.BytesIO(data) if data is not None else None)


def file_info(name, type=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = type
    info.linkname = linkname
    return info


def member_bytes(archive, name):
    with tarfile.open(archive) as tar:
        return tar.extractfile(name).read()


# ----------------------------------------------------------------------------- good archives


@pytest.mark.parametrize("name", [f"{STEM}.tgz", "imagenette2-sample.tgz"])
def test_built_archives_pass_every_level_against_the_source(built, name):
    root, manifest_path, out = built
    r = run_cli("verify", out / name, "--manifest", manifest_path, "--imagenet", root, "--jobs", "2",
                "--recipe-sample", "4", "-q")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stderr == ""  # --quiet: no bar
    for lv in ("identity", "structure", "members", "images", "source"):
        assert f"PASS  {lv}" in r.stdout
    assert "passed: 5 levels" in r.stdout
    if name.startswith(STEM):
        assert "50 byte-identical" in r.stdout
        # the sweep ranks the build's own recipe first: it reproduces the members exactly
        assert "by median PSNR: bicubic/script/q75 inf dB (4/4 exact)" in r.stdout
    else:
        assert "50 of 50 members byte-identical to their source" in r.stdout


def test_built_archive_passes_without_source(built):
    _, manifest_path, out = built
    report = check(out / f"{STEM}.tgz", manifest_path)
    assert report.passed and failed(report) == []
    assert [lv.name for lv in report.levels] == ["identity", "structure", "members", "images"]
    members = level(report, "members")
    assert members.summary == (f"51 of 51 members as {STEM}.members.sha256 lists; "  # 50 images and the root CSV
                               f"50 of 50 images as {STEM}.provenance.csv says")
    identity = level(report, "identity")
    assert "matches no published upload" in identity.summary
    assert {"SHA256SUMS: matches", "MD5SUMS: matches"} <= set(identity.notes)
    structure = level(report, "structure")
    assert {s: sum(c.values()) for s, c in structure.data["counts"].items()} == {"train": 40, "val": 10}
    assert structure.data["missing"] == structure.data["extra"] == structure.data["misplaced"] == 0
    images = level(report, "images")
    assert images.data["checked"] == 50 and sum(images.data["modes"].values()) == 50
    assert images.data["shortest_side_min"] == images.data["shortest_side_max"] == 160


def test_full_size_reports_sizes_only(built):
    _, manifest_path, out = built
    report = check(out / "imagenette2-sample.tgz", manifest_path)
    images = level(report, "images")
    assert report.passed and images.data["expected_shortest_side"] is None
    assert images.data["shortest_side_min"] < images.data["shortest_side_max"]  # sample has tiny and large images


def test_parallel_and_serial_agree(built):
    _, manifest_path, out = built
    serial = check(out / f"{STEM}.tgz", manifest_path).to_json()
    parallel = run_check(VerifyOptions(out / f"{STEM}.tgz", manifest=str(manifest_path), jobs=2, quiet=True)).to_json()
    assert serial == parallel


# ----------------------------------------------------------------------------- damaged archives


def test_flipped_byte_fails_against_the_source_naming_the_member(built, tmp_path):
    root, manifest_path, out = built

    def flip(info, data):
        if info.name == VICTIM:
            data = bytearray(data)
            data[len(data) // 2] ^= 0x55  # in the entropy-coded data: still decodes, wrong pixels
            data = bytes(data)
        return [(info, data)]

    archive = rewrite(out / f"{STEM}.tgz", tmp_path / f"{STEM}.tgz", flip)
    report = check(archive, manifest_path, imagenet=root)
    bad = failed(report)
    assert bad and set(bad) <= {"images", "source"}
    assert all(VICTIM in " ".join(level(report, name).problems) for name in bad)
    assert level(report, "structure").passed


def test_removed_member_is_missing(built, tmp_path):
    _, manifest_path, out = built
    archive = rewrite(out / f"{STEM}.tgz", tmp_path / f"{STEM}.tgz",
                      lambda info, data: [] if info.name == VICTIM else [(info, data)])
    report = check(archive, manifest_path)
    assert failed(report) == ["structure"]
    assert level(report, "structure").problems == [f"1 missing: {VICTIM}"]


def test_added_member_is_extra(built, tmp_path):
    root, manifest_path, out = built
    intruder = f"{STEM}/train/n01440764/n01440764_99999.JPEG"
    extra = [(file_info(intruder), member_bytes(out / f"{STEM}.tgz", VICTIM))]
    archive = rewrite(out / f"{STEM}.tgz", tmp_path / f"{STEM}.tgz", extra=extra)
    report = check(archive, manifest_path, imagenet=root)
    assert failed(report) == ["structure"]
    assert level(report, "structure").problems == [f"1 extra (not in the manifest): {intruder}"]
    # the source level cannot place it, but leaves the verdict to structure (the manifest lists files)
    assert any(intruder in n for n in level(report, "source").notes)


def test_member_moved_to_the_other_split_is_misplaced(built, tmp_path):
    _, manifest_path, out = built
    moved = VICTIM.replace("/train/", "/val/")

    def move(info, data):
        if info.name == VICTIM:
            info.name = moved
        return [(info, data)]

    archive = rewrite(out / f"{STEM}.tgz", tmp_path / f"{STEM}.tgz", move)
    report = check(archive, manifest_path)
    structure = level(report, "structure")
    assert failed(report) == ["structure"]
    assert structure.data["misplaced"] == 1 and structure.data["missing"] == structure.data["extra"] == 0
    assert structure.problems == [f"1 in the wrong split or class: {moved} (listed as {VICTIM.partition('/')[2]})"]
    assert structure.data["counts"]["val"]["n01440764"] == 2  # one val image of its own plus the moved one


def test_wrongly_sized_image_fails_the_images_level(built, tmp_path):
    _, manifest_path, out = built
    original = Image.open(io.BytesIO(member_bytes(out / f"{STEM}.tgz", VAL_VICTIM)))
    small = original.resize((150 * original.width // min(original.size), 150 * original.height // min(original.size)))
    buf = io.BytesIO()
    small.save(buf, format="JPEG", quality=75)

    def replace(info, data):
        return [(info, buf.getvalue() if info.name == VAL_VICTIM else data)]

    archive = rewrite(out / f"{STEM}.tgz", tmp_path / f"{STEM}.tgz", replace)
    report = check(archive, manifest_path)
    assert failed(report) == ["images"]
    assert level(report, "images").problems == [
        f"1 members whose shortest side is not 160: {VAL_VICTIM} ({small.width}x{small.height})"]


def test_undecodable_member_fails_the_images_level(built, tmp_path):
    _, manifest_path, out = built
    archive = rewrite(out / f"{STEM}.tgz", tmp_path / f"{STEM}.tgz",
                      lambda info, data: [(info, data[:len(data) // 3] if info.name == VICTIM else data)])
    report = check(archive, manifest_path)
    assert failed(report) == ["images"]
    assert VICTIM in level(report, "images").problems[0]


def test_truncated_archive_fails_in_one_line_without_traceback(built, tmp_path):
    _, manifest_path, out = built
    data = (out / f"{STEM}.tgz").read_bytes()
    archive = tmp_path / f"{STEM}.tgz"
    archive.write_bytes(data[: len(data) * 6 // 10])
    r = run_cli("verify", archive, "--manifest", manifest_path, "--jobs", "1", "-q")
    assert r.returncode == 1
    assert "Traceback" not in r.stdout + r.stderr and r.stderr == ""
    problems = [ln for ln in r.stdout.splitlines() if ln.startswith("      - archive stream:")]
    assert len(problems) == 1 and "truncated" in problems[0] and "last member read:" in problems[0]
    assert "FAIL  structure" in r.stdout


def _damaged_tar_header(src: bytes) -> bytes:
    tar_bytes = bytearray(gzip.decompress(src))
    with tarfile.open(fileobj=io.BytesIO(bytes(tar_bytes))) as tar:
        offset = [m for m in tar.getmembers() if m.isfile()][20].offset
    tar_bytes[offset:offset + 512] = b"garbage!" * 64
    return gzip.compress(bytes(tar_bytes))


@pytest.mark.parametrize("damage,needle", [
    (lambda src: os.urandom(4096), "not a gzip file"),
    (lambda src: b"", "not a gzip file (an empty file)"),
    (lambda src: gzip.compress(os.urandom(4096)), "not a valid tar stream"),
    (lambda src: src + b"junk", "4 bytes of garbage after the end of the gzip stream"),
    (lambda src: src[:-8] + bytes(b ^ 1 for b in src[-8:]), "incorrect data check"),  # gzip CRC-32
    (_damaged_tar_header, "damaged tar header or garbage at offset"),
])
def test_broken_streams_fail_the_structure_level(built, tmp_path, damage, needle):
    _, manifest_path, out = built
    archive = tmp_path / f"{STEM}.tgz"
    archive.write_bytes(damage((out / f"{STEM}.tgz").read_bytes()))
    report = check(archive, manifest_path)
    structure = level(report, "structure")
    assert not structure.passed
    assert needle in structure.problems[0] and structure.problems[0].startswith("archive stream: ")
    assert level(report, "identity").data["size"] == archive.stat().st_size  # hashed all the same


def test_hostile_archive_is_refused_naming_members_and_writes_nothing(built, tmp_path):
    _, manifest_path, out = built
    extra = [
        (file_info(f"{STEM}/../evil"), b"evil"),
        (file_info("/etc/x"), b"x"),
        (file_info(f"{STEM}/train/n01440764/link.JPEG", tarfile.SYMTYPE, "/etc/passwd"), None),
        (file_info(f"{STEM}/train/n01440764/hard.JPEG", tarfile.LNKTYPE, "/etc/shadow"), None),
        (file_info(f"{STEM}/fifo", tarfile.FIFOTYPE), None),
    ]
    archive = rewrite(out / f"{STEM}.tgz", tmp_path / "in" / f"{STEM}.tgz", extra=extra)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    r = run_cli("verify", archive, "--manifest", manifest_path, "--jobs", "2", "-q", cwd=cwd)
    assert r.returncode == 1 and "Traceback" not in r.stdout + r.stderr
    line = next(ln for ln in r.stdout.splitlines() if "unsafe members" in ln)
    assert line.startswith("      - 5 unsafe members")
    for needle in (f"{STEM}/../evil (a '..' part)", "/etc/x (an absolute path)",
                   "link.JPEG (symlink -> /etc/passwd)", "hard.JPEG (hardlink -> /etc/shadow)", "fifo (fifo)"):
        assert needle in line
    assert "FAIL  structure" in r.stdout and "PASS  images" in r.stdout  # the 50 real images are fine
    assert list(cwd.iterdir()) == [] and sorted(p.name for p in (tmp_path / "in").iterdir()) == [f"{STEM}.tgz"]
    assert not (tmp_path / "evil").exists() and not Path("/etc/x").exists()


def test_junk_is_reported_and_fails_only_with_strict(built, tmp_path):
    _, manifest_path, out = built
    extra = [(file_info(f"{STEM}/.DS_Store"), b"\0\0\0\1Bud1"), (file_info(f"{STEM}/train/._x.JPEG"), b"\0")]
    archive = rewrite(out / f"{STEM}.tgz", tmp_path / f"{STEM}.tgz", extra=extra)
    report = check(archive, manifest_path)
    assert report.passed
    assert any(n.startswith("2 junk files") and "._x.JPEG" in n for n in level(report, "structure").notes)
    strict = check(archive, manifest_path, strict=True)
    assert failed(strict) == ["structure"] and "2 junk files" in level(strict, "structure").problems[0]


# ----------------------------------------------------------------------------- identity


def digests_of(path):
    report = run_check(VerifyOptions(path, jobs=1, quiet=True))
    d = level(report, "identity").data
    return Digests(d["size"], d["sha256"], d["md5"], d["md5_first_mib"])


def test_published_matcher_compares_only_known_values(built):
    _, _, out = built
    d = digests_of(out / f"{STEM}.tgz")
    rows = read_published(
        "archive,uploaded,size_bytes,md5,md5_first_mib,sha256\n"
        f"{STEM}.tgz,2099-01,{d.size},{d.md5},{d.md5_first_mib},{d.sha256}\n"
        f"{STEM}.tgz,2099-02,,,{d.md5_first_mib.upper()},\n"  # only the checks.txt value known
        f"{STEM}.tgz,2099-03,{d.size},{d.md5},{d.md5_first_mib},{'0' * 64}\n"  # one known value wrong
        f"{STEM}.tgz,2099-04,,,,\n")  # knows nothing: matches nothing
    assert [matches_upload(d, row) for row in rows] == [True, True, False, False]
    message, found = published_match_message(d, rows)
    assert message == f"matches {STEM}.tgz as uploaded 2099-01; {STEM}.tgz as uploaded 2099-02"
    assert published_match_message(d, rows[2:])[0] == "matches no published upload"


def test_published_match_through_verify(built, tmp_path):
    _, manifest_path, out = built
    d = digests_of(out / f"{STEM}.tgz")
    table = tmp_path / "published.csv"
    table.write_text("archive,uploaded,size_bytes,md5,md5_first_mib,sha256\n"
                     f"imagenette2-160.tgz,2021-02,99003388,e793b78cc4c9e9a4ccc0c1155377a412,,\n"
                     f"{STEM}.tgz,2099-01,{d.size},,{d.md5_first_mib},{d.sha256}\n")
    report = check(out / f"{STEM}.tgz", manifest_path, published_csv=table)
    identity = level(report, "identity")
    assert identity.passed and identity.summary.endswith(f"matches {STEM}.tgz as uploaded 2099-01")
    assert identity.data["published_matches"] == [{"archive": f"{STEM}.tgz", "uploaded": "2099-01"}]


def test_sums_mismatch_beside_the_archive_fails_identity(built, tmp_path):
    _, manifest_path, out = built
    archive = tmp_path / f"{STEM}.tgz"
    shutil.copy(out / f"{STEM}.tgz", archive)
    (tmp_path / "SHA256SUMS").write_text(f"{'ab' * 32}  {STEM}.tgz\n")
    report = check(archive, manifest_path)
    identity = level(report, "identity")
    assert failed(report) == ["identity"]
    assert identity.problems == [f"SHA256SUMS says {'ab' * 32}, the file's hash is {identity.data['sha256']}"]


def test_build_report_mismatch_fails_identity(built, tmp_path):
    _, manifest_path, out = built
    archive = tmp_path / f"{STEM}.tgz"
    shutil.copy(out / f"{STEM}.tgz", archive)
    report_json = json.loads((out / f"{STEM}.json").read_text())
    report_json["archive_bytes"] += 1
    (tmp_path / f"{STEM}.json").write_text(json.dumps(report_json))
    shutil.copy(out / f"{STEM}.members.sha256", tmp_path)
    shutil.copy(out / f"{STEM}.provenance.csv", tmp_path)
    report = check(archive, manifest_path)
    assert failed(report) == ["identity"]
    assert level(report, "identity").problems[0].startswith(f"{STEM}.json says archive_bytes ")


# ----------------------------------------------------------------------------- command line


def test_json_report_has_every_level(built):
    root, manifest_path, out = built
    r = run_cli("verify", out / f"{STEM}.tgz", "--manifest", manifest_path, "--imagenet", root,
                "--recipe-sample", "0", "--json", "-q", "-j", "1")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["passed"] is True and doc["size"] == 160 and doc["manifest"] == "imagenette2-sample"
    assert [lv["level"] for lv in doc["levels"]] == ["identity", "structure", "members", "images", "source"]
    assert all(lv["passed"] and lv["problems"] == [] for lv in doc["levels"])
    source = doc["levels"][4]
    assert source["identical"] == 50 and source["median_psnr_db"] is None  # null: identical pixels


def test_exit_codes(built, tmp_path):
    root, manifest_path, out = built
    assert run_cli("verify", out / f"{STEM}.tgz", "--manifest", manifest_path, "-q", "-j", "1").returncode == 0
    broken = tmp_path / f"{STEM}.tgz"
    broken.write_bytes(b"not an archive")
    assert run_cli("verify", broken, "--manifest", manifest_path, "-q", "-j", "1").returncode == 1
    for args, needle in (
        ([tmp_path / "absent.tgz"], "absent.tgz: no such file"),
        ([tmp_path], "a folder, not one of shards: verify reads a .tgz archive"),
        ([out / f"{STEM}.tgz", "--manifest", "nope"], "unknown manifest 'nope'"),
        ([out / f"{STEM}.tgz", "--imagenet", root], "--imagenet needs the archive's manifest"),
        ([out / f"{STEM}.tgz", "--manifest", manifest_path, "--imagenet", tmp_path / "nowhere"], "no such folder"),
    ):
        r = run_cli("verify", *args, "-q")
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("imagenette-build: error:") and needle in lines[0]


def test_without_a_manifest_structure_counts_only(built):
    _, _, out = built
    report = run_check(VerifyOptions(out / f"{STEM}.tgz", jobs=1, quiet=True))
    assert report.target.manifest is None and report.passed
    assert "no manifest: member list and root files not checked (give --manifest)" in level(report, "structure").notes


# ----------------------------------------------------------------------------- pieces


def test_manifest_and_size_inferred_from_the_name():
    assert infer_manifest("imagenette2-160").name == "imagenette2"
    assert infer_manifest("imagenette2").name == "imagenette2"
    assert infer_manifest("imagewoof2-320").name == "imagewoof2"
    assert infer_manifest("imagenette2-sample-160") is None
    assert variant_size("imagenette2-160", "imagenette2", None) == 160
    assert variant_size("imagenette2", "imagenette2", None) is None
    assert variant_size("renamed", "imagenette2", {"size": "320"}) == 320
    assert variant_size("mystery-64", None, None) == 64


def test_pixel_difference():
    a = Image.new("RGB", (20, 10), (100, 100, 100))
    b = a.copy()
    assert pixel_difference(a, b)[:2] == (math.inf, 0)
    b.putpixel((0, 0), (110, 100, 100))
    psnr, max_diff, _ = pixel_difference(a, b)
    assert max_diff == 10 and psnr == pytest.approx(10 * math.log10(255 ** 2 / (100 / 600)))
    assert pixel_difference(a, Image.new("RGB", (20, 11)))[:2] == (0.0, 255)  # other geometry: not the image


def test_recipe_grid_puts_the_build_recipe_first():
    build = Recipe("lanczos", 90, "round")
    recipes = RecipeGrid(filters=("bicubic", "lanczos"), roundings=("floor", "round"), qualities=(75, 90)).recipes(build)
    assert recipes[0] == build and len(recipes) == len(set(recipes)) == 8


def test_a_fifo_as_sums_file_beside_the_archive_is_named_not_skipped(built, tmp_path):
    _, manifest_path, out = built
    shutil.copy(out / f"{STEM}.tgz", tmp_path)
    os.mkfifo(tmp_path / "SHA256SUMS")
    r = run_cli("verify", tmp_path / f"{STEM}.tgz", "--manifest", manifest_path, "-q", "-j", "1", timeout=60)
    assert r.returncode == 1
    assert "SHA256SUMS: cannot read: not a regular file: a named pipe" in r.stdout
