"""ImageNet read where it lies, through the command line: the original ILSVRC-2012 tars and the
Hugging Face shards.

The same synthetic subset is written by the generator in every layout (tests/conftest.py); an
archive built from any of them must be byte-identical to the one built from extracted folders, and
a damaged download is a one-line error naming the file. (Each reader's own tests:
tests/unit/sources/.)
"""

import io
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from imagenette_build.samplegen import LAYOUTS
from imagenette_build.sources import ilsvrc_tars, tarscan

from .. import faultkit as fk
from ..conftest import run_cli

ARCHIVED = ("ilsvrc-tars", "hf-shards", "hf-parquet")


def sums(folder):
    return dict(line.split()[::-1] for line in (folder / "SHA256SUMS").read_text().splitlines())


def one_line_error(r, code, *needles):
    assert r.returncode == code, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("imagenette-build: error: "), r.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def spill_env(tmp_path):
    spill = tmp_path / "spill"
    spill.mkdir(exist_ok=True)
    return {**os.environ, "IMAGENETTE_BUILD_TMPDIR": str(spill)}, spill


def copy_layout(archived_layouts, layout, dest):
    root, manifest_path = archived_layouts[layout]
    shutil.copytree(root, dest)
    return dest, dest / Path(manifest_path).name


@pytest.fixture(scope="module")
def reference(sample_layouts, tmp_path_factory):
    """160 px and full size built from extracted folders: the bytes every layout must give."""
    root, manifest_path = sample_layouts["folders"]
    out = tmp_path_factory.mktemp("ref")
    r = run_cli("--imagenet", root, "--manifest", manifest_path, "--size", "160", "--size", "full",
                "--out", out, "--jobs", "2", "-q")
    assert r.returncode == 0, r.stderr
    return sums(out)


@pytest.mark.parametrize("layout", ARCHIVED)
def test_same_archives_as_from_extracted_folders(layout, archived_layouts, reference, tmp_path):
    root, manifest_path = archived_layouts[layout]
    env, spill = spill_env(tmp_path)
    out = tmp_path / "dist"
    r = run_cli("--imagenet", root, "--manifest", manifest_path, "--size", "160", "--size", "full",
                "--out", out, "--jobs", "2", "-q", env=env)
    assert r.returncode == 0, r.stderr
    assert sums(out) == reference
    assert list(spill.iterdir()) == []  # the spill file (HF layouts) is gone after the run


def test_generator_layouts_are_the_cli_choices():
    r = run_cli("sample-imagenet", "--help")
    for layout in LAYOUTS:
        assert layout in r.stdout


# -- the original tars: errors ---------------------------------------------------------------------

def _rewrite_train_tar(path, change):
    """Rewrite the outer train tar, each class tar's bytes passed through change(name, bytes)."""
    with tarfile.open(path) as tar:
        members = [(t.name, tar.extractfile(t).read()) for t in tar]
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members:
            data = change(name, data)
            if data is not None:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def test_train_tar_without_a_manifest_class(archived_layouts, tmp_path):
    root, manifest_path = copy_layout(archived_layouts, "ilsvrc-tars", tmp_path / "in")
    _rewrite_train_tar(root / ilsvrc_tars.TRAIN_TAR, lambda n, d: None if n == "n03888257.tar" else d)
    r = run_cli("--imagenet", root, "--manifest", manifest_path, "--out", tmp_path / "out", "--dry-run", "-q")
    one_line_error(r, 1, f"{root / ilsvrc_tars.TRAIN_TAR}: has no n03888257.tar", "parachute")
    assert not (tmp_path / "out").exists()


def test_truncated_outer_train_tar(archived_layouts, tmp_path):
    root, manifest_path = copy_layout(archived_layouts, "ilsvrc-tars", tmp_path / "in")
    train = root / ilsvrc_tars.TRAIN_TAR
    with open(train, "rb", buffering=0) as f:
        last_wanted = [m for m in tarscan.scan_members(f, "x") if m.name == "n03888257.tar"][0]
    os.truncate(train, last_wanted.offset + last_wanted.size // 2)
    r = run_cli("--imagenet", root, "--manifest", manifest_path, "--out", tmp_path / "out", "-q")
    one_line_error(r, 1, str(train), "truncated", "n03888257.tar needs")
    assert not (tmp_path / "out").exists()


def test_truncated_class_tar_inside_the_train_tar(archived_layouts, tmp_path):
    root, manifest_path = copy_layout(archived_layouts, "ilsvrc-tars", tmp_path / "in")
    _rewrite_train_tar(root / ilsvrc_tars.TRAIN_TAR,
                       lambda n, d: d[:len(d) // 3] if n == "n01440764.tar" else d)
    r = run_cli("--imagenet", root, "--manifest", manifest_path, "--out", tmp_path / "out", "-q")
    one_line_error(r, 1, f"{root / ilsvrc_tars.TRAIN_TAR} member n01440764.tar: truncated")


def test_truncated_val_tar(archived_layouts, tmp_path):
    root, manifest_path = copy_layout(archived_layouts, "ilsvrc-tars", tmp_path / "in")
    val = root / ilsvrc_tars.VAL_TAR
    os.truncate(val, val.stat().st_size // 2 + 100)
    r = run_cli("--imagenet", root, "--manifest", manifest_path, "--dry-run", "-q")
    one_line_error(r, 1, f"{val}: truncated")


def _write_devkit(path, files):
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize("case", ["missing", "short", "counts", "no member", "not gzip", "extra val image"])
def test_devkit_missing_or_not_matching(case, archived_layouts, tmp_path):
    root, manifest_path = copy_layout(archived_layouts, "ilsvrc-tars", tmp_path / "in")
    devkit = root / "ILSVRC2012_devkit_t12.tar.gz"
    gt = "ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt"
    needles = {
        "missing": ["ILSVRC2012_img_val.tar: validation images need the devkit", "ILSVRC2012_devkit_t12.tar.gz"],
        "short": [str(devkit), "expected 50000 labels"],
        "counts": [str(devkit), "does not match ILSVRC-2012"],
        "no member": [str(devkit), "has no data/ILSVRC2012_validation_ground_truth.txt"],
        "not gzip": [str(devkit), "cannot read the devkit archive"],
        "extra val image": ["ILSVRC2012_img_val.tar: holds ILSVRC2012_val_00050001.JPEG", "do not match"],
    }[case]
    if case == "missing":
        devkit.unlink()
    elif case == "short":
        _write_devkit(devkit, {gt: fk.devkit_ground_truth(lines=49_999)})
    elif case == "counts":
        _write_devkit(devkit, {gt: fk.devkit_ground_truth(per_class=49)})
    elif case == "no member":
        _write_devkit(devkit, {"ILSVRC2012_devkit_t12/COPYING": "x"})
    elif case == "not gzip":
        devkit.write_bytes(b"garbage" * 100)
    else:
        with tarfile.open(root / ilsvrc_tars.VAL_TAR, "a") as tar:
            info = tarfile.TarInfo("ILSVRC2012_val_00050001.JPEG")
            info.size = 3
            tar.addfile(info, io.BytesIO(b"abc"))
    r = run_cli("--imagenet", root, "--manifest", manifest_path, "--dry-run", "-q")
    one_line_error(r, 2, *needles)


@pytest.mark.parametrize("other", ["extracted folders", "hf"])
def test_mixed_layouts(other, archived_layouts, tmp_path):
    if other == "extracted folders":
        root, manifest_path = copy_layout(archived_layouts, "ilsvrc-tars", tmp_path / "in")
        (root / "train" / "n01440764").mkdir(parents=True)
        needles = ["mixed layouts", "extracted folders", "ILSVRC2012_img_train.tar"]
    else:
        root, manifest_path = copy_layout(archived_layouts, "hf-shards", tmp_path / "in")
        pq_root, _ = archived_layouts["hf-parquet"]
        shutil.copy(pq_root / "data" / "validation-00000-of-00001.parquet", root / "data")
        needles = ["mixed layouts", "tar.gz shards", "parquet shards"]
    r = run_cli("--imagenet", root, "--manifest", manifest_path, "--dry-run", "-q")
    one_line_error(r, 2, *needles)


def test_full_size_from_the_tars_verifies_against_the_tars(archived_layouts, tmp_path):
    root, manifest_path = archived_layouts["ilsvrc-tars"]
    out = tmp_path / "dist"
    r = run_cli("--imagenet", root, "--manifest", manifest_path, "--size", "full", "--out", out, "-q")
    assert r.returncode == 0, r.stderr
    r = run_cli("verify", out / "imagenette2-sample.tgz", "--manifest", manifest_path, "--imagenet", root,
                "--json", "-q")
    assert r.returncode == 0, r.stdout + r.stderr


# -- Hugging Face shards: a damaged shard, the spill folder, pyarrow ----------------------------------

@pytest.mark.parametrize("damage", ["truncated", "flipped bytes"])
def test_damaged_gzip_shard_is_an_error_and_leaves_no_spill(damage, archived_layouts, tmp_path):
    root, manifest_path = copy_layout(archived_layouts, "hf-shards", tmp_path / "in")
    shard = root / "data" / "val_images.tar.gz"
    if damage == "truncated":
        os.truncate(shard, shard.stat().st_size // 2)
    else:
        data = bytearray(shard.read_bytes())
        for i in range(len(data) // 2, len(data) // 2 + 64):
            data[i] ^= 0xFF
        shard.write_bytes(bytes(data))
    env, spill = spill_env(tmp_path)
    r = run_cli("--imagenet", root, "--manifest", manifest_path, "--out", tmp_path / "out", "-q", env=env)
    line = one_line_error(r, 1, str(shard))
    assert "truncated or corrupt gzip" in line or "corrupt at byte" in line, line
    assert list(spill.iterdir()) == []
    assert not (tmp_path / "out").exists()


def test_spill_folder_must_exist(archived_layouts, tmp_path):
    root, manifest_path = archived_layouts["hf-shards"]
    env = {**os.environ, "IMAGENETTE_BUILD_TMPDIR": str(tmp_path / "nope")}
    r = run_cli("--imagenet", root, "--manifest", manifest_path, "--dry-run", "-q", env=env)
    one_line_error(r, 2, f"IMAGENETTE_BUILD_TMPDIR={tmp_path / 'nope'}: no such folder")


def test_parquet_without_pyarrow_says_how_to_install(archived_layouts, tmp_path):
    import subprocess
    import sys

    root, manifest_path = archived_layouts["hf-parquet"]
    code = ("import sys; sys.modules['pyarrow'] = None; sys.modules['pyarrow.parquet'] = None; "
            "from imagenette_build.cli import main; sys.argv = ['imagenette-build'] + sys.argv[1:]; main()")
    r = subprocess.run([sys.executable, "-c", code, "--imagenet", str(root), "--manifest", str(manifest_path),
                        "--dry-run", "-q"], capture_output=True, text=True)
    one_line_error(r, 2, "needs pyarrow", "pip install 'imagenette-build[parquet]'")
