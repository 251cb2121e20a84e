"""The published recipe (fastai-2018): the ten published members that regenerate byte for byte,
built as imagewoof2 and verified, verify's member-by-member checks, what the report and --version
say, and the same archive from every resampler. (The recipe's geometry and encoding by themselves:
unit/test_transform.py; the report's fidelity facts: unit/test_commit.py.)

Tests that need the real photos read them from ../shared/reference (ImageNet's terms: never
committed) and skip, saying so, where that folder is absent; CI has it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from imagenette_build import toolchain
from imagenette_build.settings import ENV
from imagenette_build.transform import Recipe, make_jpegs
from imagenette_build.verifier import RecipeGrid, VerifyOptions, check

from .. import faultkit as fk
from ..conftest import REFERENCE, run_cli

SAMPLES = REFERENCE / "imagenet-samples"
PUBLISHED_LIST = Path(__file__).resolve().parents[2] / "manifests" / "imagewoof2-320_2019-12.sha256"
needs_photos = pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"{SAMPLES} is not beside this checkout")

# The ten photos of ../shared/reference that are the ImageNet originals of published imagewoof2
# members (reference README): sample file -> member of imagewoof2-320.
TEN = {
    "n02086240_Shih-Tzu": "train/n02086240/n02086240_4256.JPEG",
    "n02087394_Rhodesian_ridgeback": "train/n02087394/n02087394_7459.JPEG",
    "n02088364_beagle": "val/n02088364/n02088364_13391.JPEG",
    "n02089973_English_foxhound": "train/n02089973/n02089973_5656.JPEG",  # 200x200 with a COM: enlarged
    "n02093754_Border_terrier": "train/n02093754/n02093754_337.JPEG",
    "n02096294_Australian_terrier": "train/n02096294/n02096294_8649.JPEG",
    "n02099601_golden_retriever": "val/n02099601/n02099601_17361.JPEG",
    "n02105641_Old_English_sheepdog": "train/n02105641/n02105641_14665.JPEG",
    "n02111889_Samoyed": "train/n02111889/n02111889_5506.JPEG",
    "n02115641_dingo": "val/n02115641/n02115641_42170.JPEG",
}


def published_digests() -> dict[str, str]:
    return dict(line.split("  ", 1)[::-1] for line in PUBLISHED_LIST.read_text().splitlines())


@pytest.fixture(params=["native", "portable-numba", "portable-numpy"])
def resampler(request, use_settings):
    """Every way this machine can compute pillow-simd's resampling."""
    if request.param == "native" and not toolchain.pillow_flavour() == "pillow-simd":
        pytest.skip("pillow-simd is not installed here (CI's other environment has it)")
    use_settings(**_resampler_settings(request.param))
    yield request.param


def _resampler_settings(resampler: str) -> dict:
    return {"resampler": "native" if resampler == "native" else "portable",
            "resample_engine": "numpy" if resampler.endswith("-numpy") else "numba"}


def _resampler_environment(resampler: str) -> dict:
    """The environment that asks a command line for `resampler` (it reads it once, settings.py)."""
    return {**os.environ, **{ENV[k]: v for k, v in _resampler_settings(resampler).items()}}


# ----------------------------------------------------------------------------- the ten published members


@needs_photos
def test_the_ten_published_members_regenerate_byte_for_byte(resampler):
    published = published_digests()
    for sample, member in TEN.items():
        [out] = make_jpegs((SAMPLES / f"{sample}.JPEG").read_bytes(), (320,), Recipe())
        assert hashlib.sha256(out).hexdigest() == published[member], (sample, resampler)


@pytest.fixture(scope="module")
def ten_as_imagewoof2(tmp_path_factory):
    """The ten photos laid out as ImageNet train images, and a manifest of the published imagewoof2
    holding only their ten members (stem imagewoof2, so the archive is imagewoof2-320.tgz)."""
    base = tmp_path_factory.mktemp("ten")
    imagenet = base / "imagenet"
    for sample, member in TEN.items():
        _, wnid, name = member.split("/")
        (imagenet / "train" / wnid).mkdir(parents=True, exist_ok=True)
        shutil.copy(SAMPLES / f"{sample}.JPEG", imagenet / "train" / wnid / name)
    mdir = base / "manifest"
    mdir.mkdir()
    builtin = Path(__file__).resolve().parents[2] / "manifests"
    header, *rows = (builtin / "noisy_imagewoof.csv").read_text().splitlines(keepends=True)
    wanted = set(TEN.values())
    (mdir / "noisy_imagewoof.csv").write_text(header + "".join(r for r in rows if r.split(",", 1)[0] in wanted))
    shutil.copy(builtin / "imagewoof2-320_2019-12.sha256", mdir)
    shutil.copy(builtin / "imagewoof2.toml", mdir / "imagewoof2.toml")
    return imagenet, mdir / "imagewoof2.toml"


@needs_photos
def test_the_ten_built_as_imagewoof2_members_are_the_published_bytes(ten_as_imagewoof2, tmp_path):
    imagenet, manifest = ten_as_imagewoof2
    out = tmp_path / "dist"
    r = run_cli("--imagenet", imagenet, "--manifest", manifest, "--size", "320", "--out", out, "-q")
    assert r.returncode == 0, r.stderr
    built = fk.parse_member_list(out / "imagewoof2-320.members.sha256")
    published = published_digests()
    assert {m: built[m] for m in TEN.values()} == {m: published[m] for m in TEN.values()}
    report = check(VerifyOptions(out / "imagewoof2-320.tgz", manifest=str(manifest), jobs=1, quiet=True,
                                  grid=RecipeGrid(sample=0)))
    members = next(lv for lv in report.levels if lv.name == "members")
    assert "10 of 12954 members identical to the published imagewoof2-320 (uploaded 2021-02, 2019-12-09)" \
        in members.summary
    [pub] = members.data["published"]
    assert pub["identical"] == 10 and pub["differ"] == [] and pub["extra"] == [] and len(pub["missing"]) == 12944
    # with the sources, each member regenerates byte for byte
    r = run_cli("verify", out / "imagewoof2-320.tgz", "--manifest", manifest, "--imagenet", imagenet,
                "--recipe-sample", "0", "-q", "--json")
    doc = json.loads(r.stdout)
    source = next(lv for lv in doc["levels"] if lv["level"] == "source")
    assert source["passed"] and source["exact"] and source["identical"] == 10


# ----------------------------------------------------------------------------- verify, member by member


@pytest.fixture(scope="module")
def built(sample, tmp_path_factory):
    root, manifest_path = sample
    out = tmp_path_factory.mktemp("dist")
    r = run_cli("--imagenet", root, "--manifest", manifest_path, "--size", "160", "--out", out, "-q")
    assert r.returncode == 0, r.stderr
    return root, Path(manifest_path), out


STEM = "imagenette2-sample-160"
VICTIM = f"{STEM}/train/n01440764/n01440764_10744.JPEG"


def _rewrite(src: Path, dest: Path, edit) -> None:
    """Copy an archive member by member, `edit(name, data) -> data` on each file."""
    with tarfile.open(src) as tin, tarfile.open(dest, "w:gz") as tout:
        for info in tin:
            data = tin.extractfile(info).read() if info.isfile() else None
            if data is not None:
                data = edit(info.name, data)
                info.size = len(data)
            tout.addfile(info, io.BytesIO(data) if data is not None else None)


def _flip_late_byte(data: bytes) -> bytes:
    """One bit of the last entropy-coded bytes: the image still decodes, nearly the same."""
    at = data.rindex(b"\xff\xd9") - 3
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


def test_one_changed_byte_is_named_without_and_with_the_sources(built, tmp_path):
    root, manifest_path, out = built
    _rewrite(out / f"{STEM}.tgz", tmp_path / f"{STEM}.tgz",
             lambda name, data: _flip_late_byte(data) if name == VICTIM else data)
    for beside in (f"{STEM}.json", f"{STEM}.members.sha256"):
        shutil.copy(out / beside, tmp_path)
    r = run_cli("verify", tmp_path / f"{STEM}.tgz", "--manifest", manifest_path, "-q", "-j", "1", "--json")
    assert r.returncode == 1
    levels = {lv["level"]: lv for lv in json.loads(r.stdout)["levels"]}
    assert not levels["members"]["passed"] and levels["images"]["passed"]  # it still decodes
    assert levels["members"]["build_list"]["differ"] == [VICTIM.partition("/")[2]]
    assert VICTIM in levels["members"]["problems"][0]
    r = run_cli("verify", tmp_path / f"{STEM}.tgz", "--manifest", manifest_path, "--imagenet", root,
                "--recipe-sample", "0", "-q", "-j", "1", "--json")
    source = {lv["level"]: lv for lv in json.loads(r.stdout)["levels"]}["source"]
    assert not source["passed"] and source["exact"] and source["identical"] == 49
    assert source["problems"][0].startswith(f"1 members differ from their regeneration: {VICTIM} (")
    assert source["worst"][0]["member"] == VICTIM and source["worst"][0]["psnr_db"] > 30  # PSNR alone was fooled


def _published_manifest(manifest_path: Path, dest: Path, digests: dict[str, str], **row) -> Path:
    """A copy of the sample manifest declaring a published upload of `<stem>-160.tgz` whose image
    members have `digests`."""
    for f in manifest_path.parent.iterdir():
        if f.suffix in (".csv", ".toml"):
            shutil.copy(f, dest)
    (dest / "published.sha256").write_text("".join(f"{d}  {m}\n" for m, d in sorted(digests.items())))
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in row.items())
    with open(dest / manifest_path.name, "a") as f:
        f.write(f'\n[[published]]\narchive = "{STEM}.tgz"\nuploaded = "2030-01"\nmembers = "published.sha256"\n{extra}')
    return dest / manifest_path.name


def test_published_member_list_counts_and_names_differences(built, tmp_path):
    _, manifest_path, out = built
    images = {m: d for m, d in fk.parse_member_list(out / f"{STEM}.members.sha256").items() if "/" in m}
    manifest = _published_manifest(manifest_path, tmp_path, images)
    report = check(VerifyOptions(out / f"{STEM}.tgz", manifest=str(manifest), jobs=1, quiet=True,
                                  grid=RecipeGrid(sample=0)))
    members = next(lv for lv in report.levels if lv.name == "members")
    assert members.passed and "50 of 50 members identical to the published imagenette2-sample-160" in members.summary

    # a download (no report beside it) whose one member differs: a failure naming it
    download = tmp_path / "download"
    download.mkdir()
    _rewrite(out / f"{STEM}.tgz", download / f"{STEM}.tgz",
             lambda name, data: _flip_late_byte(data) if name == VICTIM else data)
    report = check(VerifyOptions(download / f"{STEM}.tgz", manifest=str(manifest), jobs=1, quiet=True,
                                  grid=RecipeGrid(sample=0)))
    members = next(lv for lv in report.levels if lv.name == "members")
    assert not members.passed and "49 of 50 members identical" in members.summary
    assert members.problems == [f"against the published imagenette2-sample-160 (uploaded 2030-01): "
                                f"1 members differ: {VICTIM}"]


def test_a_build_with_another_recipe_is_not_failed_for_differing(built, tmp_path, sample):
    root, manifest_path, out = built
    images = {m: d for m, d in fk.parse_member_list(out / f"{STEM}.members.sha256").items() if "/" in m}
    manifest = _published_manifest(manifest_path, tmp_path, images)
    other = tmp_path / "other"
    r = run_cli("--imagenet", root, "--manifest", manifest, "--size", "160", "--out", other, "-q",
                "--filter", "lanczos")
    assert r.returncode == 0, r.stderr
    report = check(VerifyOptions(other / f"{STEM}.tgz", manifest=str(manifest), jobs=1, quiet=True,
                                  grid=RecipeGrid(sample=0)))
    members = next(lv for lv in report.levels if lv.name == "members")
    assert members.passed and "0 of 50 members identical" in members.summary
    assert members.notes[0].startswith("not the published images: built with the recipe in")


def test_the_2019_12_layout_without_root_files_is_that_uploads_layout(built, tmp_path):
    _, manifest_path, out = built
    bare = tmp_path / "bare"
    bare.mkdir()
    with tarfile.open(out / f"{STEM}.tgz") as tin, tarfile.open(bare / f"{STEM}.tgz", "w:gz") as tout:
        for info in tin:
            if not info.name.endswith(".csv"):
                tout.addfile(info, tin.extractfile(info) if info.isfile() else None)
    plain = check(VerifyOptions(bare / f"{STEM}.tgz", manifest=str(manifest_path), jobs=1, quiet=True))
    assert next(lv for lv in plain.levels if lv.name == "structure").problems == [
        f"root file {STEM}/noisy_imagenette.csv is missing"]
    declared = tmp_path / "declared"
    declared.mkdir()
    manifest = _published_manifest(manifest_path, declared, {}, root_files=[])
    report = check(VerifyOptions(bare / f"{STEM}.tgz", manifest=str(manifest), jobs=1, quiet=True))
    structure = next(lv for lv in report.levels if lv.name == "structure")
    assert structure.passed
    assert f"root files (none) as in the published {STEM}.tgz uploaded 2030-01" in structure.notes


# ----------------------------------------------------------------------------- what the report says


def test_report_and_version_say_what_made_the_bytes(built, tmp_path, sample):
    root, manifest_path, _ = built
    version = run_cli("--version").stdout
    assert "resampling: " in version and toolchain.libjpeg_version() in version
    r = run_cli("--imagenet", root, "--manifest", manifest_path, "--size", "64", "--out", tmp_path, "-q",
                "--decode", "scaled", "--json")
    report = json.loads(r.stdout)
    assert report["options"]["recipe"]["name"] == "custom" and not report["options"]["recipe"]["published"]
    assert report["fidelity"]["problems"] == ["not the published recipe (decode scaled)"]
    assert not report["fidelity"]["published_bytes_possible"]


def test_every_resampler_builds_the_same_archive(built, resampler, tmp_path, monkeypatch):
    """Whichever code computes pillow-simd's arithmetic here, the archive is byte for byte the same
    (CI's scripts/same_bytes.py compares the two Pillows the same way)."""
    root, manifest_path, out = built
    r = run_cli("--imagenet", root, "--manifest", manifest_path, "--size", "160", "--out", tmp_path, "-q",
                "--no-cache", env=_resampler_environment(resampler))
    assert r.returncode == 0, r.stderr
    assert fk.parse_sums(tmp_path / "SHA256SUMS")[f"{STEM}.tgz"] == fk.parse_sums(out / "SHA256SUMS")[f"{STEM}.tgz"]
    expected = "numpy" if resampler.endswith("numpy") else "pillow-simd" if resampler == "native" else "numba"
    assert expected in json.loads((tmp_path / f"{STEM}.json").read_text())["toolchain"]["resampler"]
