"""From the built dataset to a training DataLoader: the Parquet and WebDataset outputs load in the
libraries people use, `extract` writes what `tar xzf` writes, the contact sheets, the Python API
and the cache policy (README "Using the archives")."""

from __future__ import annotations

import filecmp
import io
import json
import re
import shlex
import subprocess
import tarfile
from pathlib import Path

import pytest
from PIL import Image

import imagenette_build as ib
from imagenette_build import manifest as manifests

from .. import faultkit as fk
from ..conftest import run_cli

STEM = "imagenette2-sample-64"


@pytest.fixture(scope="module")
def built(sample, tmp_path_factory):
    """The sample at 64 px in every format, with 40 KiB shards so that each split has several."""
    root, manifest_path = sample
    out = tmp_path_factory.mktemp("dist")
    r = run_cli("--imagenet", root, "--manifest", manifest_path, "--size", "64", "--out", out, "-q", "-j", "2",
                "--format", "tgz", "--format", "parquet", "--format", "webdataset", "--shard-size", "40K")
    assert r.returncode == 0, r.stderr
    return root, Path(manifest_path), out


def _listed(manifest_path: Path) -> dict[str, str]:
    m = manifests.load_path(manifest_path)
    return {li.member: li.wnid for li in m.listed_images()}


def test_every_output_is_in_the_sums_and_the_report(built):
    _, _, out = built
    r = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    sums = fk.parse_sums(out / "SHA256SUMS")
    report = json.loads((out / f"{STEM}.json").read_text())
    listed = {f["path"]: f["sha256"] for o in report["outputs"].values() for f in o["files"]}
    assert listed == sums
    parquet = sorted(p for p in sums if p.startswith(f"{STEM}-parquet/"))
    wds = sorted(p for p in sums if p.startswith(f"{STEM}-wds/"))
    assert len(parquet) > 2 and len(wds) > 2  # several shards a split
    total = sum(1 for p in parquet if p.split("/")[1].startswith("train-"))
    assert f"{STEM}-parquet/train-00000-of-{total:05d}.parquet" in parquet
    assert report["classes"][0] == {"index": 0, "wnid": "n01440764", "name": "tench"}
    assert [c["index"] for c in report["classes"]] == list(range(10))


def test_same_bytes_whatever_the_jobs(built, tmp_path):
    root, manifest_path, out = built
    r = run_cli("--imagenet", root, "--manifest", manifest_path, "--size", "64", "--out", tmp_path, "-q", "-j", "1",
                "--format", "tgz", "--format", "parquet", "--format", "webdataset", "--shard-size", "40K",
                "--no-cache")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "SHA256SUMS").read_text() == (out / "SHA256SUMS").read_text()


def test_parquet_loads_in_hugging_face_datasets_with_class_names(built, tmp_path):
    datasets = pytest.importorskip("datasets")  # in the test extra: CI has it
    _, manifest_path, out = built
    folder = out / f"{STEM}-parquet"
    ds = datasets.load_dataset("parquet", data_files={"train": str(folder / "train-*.parquet"),
                                                      "validation": str(folder / "val-*.parquet")},
                               cache_dir=str(tmp_path / "hf"))
    listed = _listed(manifest_path)
    assert ds["train"].num_rows == sum(1 for m in listed if m.startswith("train/"))
    assert ds["validation"].num_rows == sum(1 for m in listed if m.startswith("val/"))
    features = ds["train"].features
    assert isinstance(features["image"], datasets.Image)
    names = [c.name for c in manifests.load_path(manifest_path).classes]
    assert features["label"].names == names and features["noisy_labels_25"].names == names
    row = ds["validation"][0]
    assert isinstance(row["image"], Image.Image) and min(row["image"].size) == 64
    names_by_wnid = {c.wnid: c.name for c in manifests.load_path(manifest_path).classes}
    assert features["label"].int2str(row["label"]) == names_by_wnid[row["wnid"]]
    members = {r["image"]["path"] for r in ds["train"].cast_column("image", datasets.Image(decode=False))}
    assert members == {m for m in listed if m.startswith("train/")}


def test_webdataset_shards_read_in_webdataset_and_hugging_face(built, tmp_path):
    wds = pytest.importorskip("webdataset")
    datasets = pytest.importorskip("datasets")
    _, manifest_path, out = built
    listed = _listed(manifest_path)
    shards = sorted(str(p) for p in (out / f"{STEM}-wds").glob("train-*.tar"))
    samples = list(wds.WebDataset(shards, shardshuffle=False).decode("pil"))
    assert sorted(s["__key__"] for s in samples) == sorted(m.rsplit(".", 1)[0] for m in listed if m.startswith("train/"))
    first = samples[0]
    assert min(first["jpg"].size) == 64 and first["json"]["split"] == "train"
    assert first["cls"] == first["json"]["label"] == sorted(set(listed.values())).index(first["json"]["wnid"])
    ds = datasets.load_dataset("webdataset", data_files={"train": shards}, split="train", cache_dir=str(tmp_path / "hf"))
    assert ds.num_rows == len(samples) and {"jpg", "cls", "json"} <= set(ds.column_names)


ODD_NAMES = {  # file: the image it is a copy of (in the same class folder)
    "n01440764/n01440764_10744.v2.JPEG": "n01440764/n01440764_10744.JPEG",
    "n01440764/x.JPEG": "n01440764/n01440764_13895.JPEG",
    "n01440764/x.jpeg": "n01440764/n01440764_5068.JPEG",
    "n02102040/x.JPEG": "n01440764/n01440764_5068.JPEG",
    "n02102040/a b~c%d.é.JPEG": "n01440764/n01440764_13895.JPEG",
    "n02102040/x%2Ev2.JPEG": "n01440764/n01440764_10744.JPEG",
}


def test_webdataset_keys_that_both_loaders_read_whatever_the_file_names(sample, tmp_path):
    """With the imagenet split policy members are named after the files. `n01440764_10744.v2.JPEG`
    gave the fields `v2.jpg` and `v2.cls` (to_tuple("jpg", "cls") failed, and Hugging Face), and
    `x.JPEG` beside `x.jpeg` one key twice ("duplicate file name in tar file"), while the build exited
    0. Keys are now dot-free and unique: every image comes back once, with its label and its member
    path, from webdataset and from Hugging Face, whatever the shards."""
    wds = pytest.importorskip("webdataset")
    datasets = pytest.importorskip("datasets")
    root, _ = sample
    copy = fk.copy_imagenet(root, tmp_path / "imagenet")
    for name, original in ODD_NAMES.items():
        (copy / "train" / name).write_bytes((copy / "train" / original).read_bytes())
    manifest = tmp_path / "two.toml"
    r = run_cli("new-manifest", "two", "--wnid", "n01440764", "--wnid", "n02102040", "--split", "imagenet",
                "--out", manifest)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out"
    r = run_cli("--imagenet", copy, "--manifest", manifest, "--size", "16", "--out", out, "-q", "-j", "1",
                "--format", "tgz", "--format", "webdataset", "--shard-size", "2K")
    assert r.returncode == 0, r.stderr
    with tarfile.open(out / "two-16.tgz") as tar:
        members = {m.name.partition("/")[2] for m in tar if m.isfile() and m.name.count("/") == 3}
    assert {f"train/{name}" for name in ODD_NAMES} <= members
    expected = {m: ["n01440764", "n02102040"].index(m.split("/")[1]) for m in members}
    shards = sorted(str(p) for p in (out / "two-16-wds").glob("*.tar"))
    assert len(shards) > 5  # (a shard a few images: keys must not depend on where shards end)
    got = [(meta["member"], cls) for _, cls, meta in
           wds.WebDataset(shards, shardshuffle=False).decode("pil").to_tuple("jpg", "cls", "json")]
    assert sorted(got) == sorted(expected.items())
    ds = datasets.load_dataset("webdataset", data_files={"train": shards}, split="train", cache_dir=str(tmp_path / "hf"))
    assert sorted((row["json"]["member"], row["cls"]) for row in ds) == sorted(expected.items())
    keys = [row["__key__"] for row in ds]
    assert len(set(keys)) == len(keys) and not any("." in k.rsplit("/", 1)[1] for k in keys)


def test_tgz_unchanged_by_the_other_formats(built, sample, tmp_path):
    root, manifest_path = sample
    _, _, out = built
    r = run_cli("--imagenet", root, "--manifest", manifest_path, "--size", "64", "--out", tmp_path, "-q")
    assert r.returncode == 0, r.stderr
    assert fk.sha256(tmp_path / f"{STEM}.tgz") == fk.sha256(out / f"{STEM}.tgz")


# ----------------------------------------------------------------------------- extract


def test_extract_writes_what_tar_xzf_writes(built, tmp_path):
    _, _, out = built
    r = run_cli("extract", out / f"{STEM}.tgz", "--into", tmp_path / "ours")
    assert r.returncode == 0, r.stderr
    assert f"torchvision: torchvision.datasets.ImageFolder('{(tmp_path / 'ours' / STEM).absolute()}/train')" in r.stdout
    (tmp_path / "tar").mkdir()
    subprocess.run(["tar", "xzf", out / f"{STEM}.tgz", "-C", tmp_path / "tar"], check=True)
    ours, theirs = tmp_path / "ours" / STEM, tmp_path / "tar" / STEM
    names = sorted(str(p.relative_to(theirs)) for p in theirs.rglob("*"))
    assert names == sorted(str(p.relative_to(ours)) for p in ours.rglob("*"))
    for name in names:
        a, b = ours / name, theirs / name
        assert a.stat().st_mode == b.stat().st_mode, name
        if b.is_file():
            assert filecmp.cmp(a, b, shallow=False) and a.stat().st_mtime == b.stat().st_mtime, name
    assert [p.name for p in (tmp_path / "ours").iterdir()] == [STEM]  # nothing else: no temporary folder


def test_extract_refuses_and_leaves_nothing(built, tmp_path):
    _, _, out = built
    archive = tmp_path / f"{STEM}.tgz"
    archive.write_bytes((out / f"{STEM}.tgz").read_bytes())
    (tmp_path / "SHA256SUMS").write_text(f"{'0' * 64}  {STEM}.tgz\n")
    into = tmp_path / "into"
    r = run_cli("extract", archive, "--into", into)
    fk.one_line_error(r, 1, f"{archive}: its sha256 is", "nothing extracted")
    assert not into.exists()  # not even the folder it made
    (tmp_path / "SHA256SUMS").unlink()
    assert run_cli("extract", archive, "--into", into, "-q").returncode == 0
    r = run_cli("extract", archive, "--into", into)
    fk.one_line_error(r, 2, f"{into / STEM}: already exists (--force replaces it)")
    assert run_cli("extract", archive, "--into", into, "--force", "-q").returncode == 0
    # a link, or a member outside the folder named after the archive
    for name, info in (("link", fk_link("imagenette2-sample-64/evil", "/etc/passwd")),
                       ("outside", fk_file("other/file.txt"))):
        bad = tmp_path / name / f"{STEM}.tgz"
        bad.parent.mkdir()
        with tarfile.open(bad, "w:gz") as tar:
            tar.addfile(fk_file(f"{STEM}/ok.txt"), io.BytesIO(b"ok"))
            tar.addfile(info, io.BytesIO(b"x") if info.isfile() else None)
        target = tmp_path / f"into-{name}"
        r = run_cli("extract", bad, "--into", target)
        fk.one_line_error(r, 1, "nothing extracted" if name == "outside" else "symlink -> /etc/passwd")
        assert not target.exists()


def fk_link(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


def fk_file(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = 1 if name.endswith("file.txt") else 2
    return info


def test_extract_into_a_torchvision_root_and_fastai_data(built, tmp_path):
    _, _, out = built
    fastai_data = tmp_path / ".fastai" / "data"
    result = ib.extract(out / f"{STEM}.tgz", into=fastai_data)
    assert result["folder"] == str(fastai_data / STEM) and (fastai_data / STEM / "train").is_dir()
    assert result["checked_against"] == ["md5 in MD5SUMS", "sha256 in SHA256SUMS"]


# ----------------------------------------------------------------------------- preview


def test_preview_of_an_archive_is_a_row_per_class_and_deterministic(built, tmp_path):
    _, manifest_path, out = built
    for name in ("a.png", "b.png"):
        r = run_cli("preview", out / f"{STEM}.tgz", "-o", tmp_path / name, "--per-class", "3",
                    "--manifest", manifest_path)
        assert r.returncode == 0, r.stderr
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    sheet = Image.open(tmp_path / "a.png")
    assert sheet.format == "PNG" and sheet.size == (220 + 3 * 132 + 4, 10 * 132 + 4)


def test_preview_of_classes_from_imagenet(sample, tmp_path):
    root, _ = sample
    r = run_cli("preview", "--imagenet", root, "--wnid", "n01440764", "--wnid", "n03888257", "-o", tmp_path / "s.png")
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "s.png").size[1] == 2 * 132 + 4
    r = run_cli("classes", "parachute", "--preview", tmp_path / "p.png", "--imagenet", root, "--per-class", "2")
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "p.png").size == (220 + 2 * 132 + 4, 132 + 4)
    r = run_cli("preview", "--imagenet", root, "--wnid", "n0144", "-o", tmp_path / "x.png")
    fk.one_line_error(r, 2, "--wnid: malformed WNID 'n0144'")


# ----------------------------------------------------------------------------- the Python API


def test_python_api_builds_verifies_and_raises(sample, tmp_path):
    root, manifest_path = sample
    [report] = ib.build(root, manifest=str(manifest_path), sizes=[48], out=tmp_path, jobs=1)
    assert report["archive"] == "imagenette2-sample-48.tgz" and report["images"] == 50
    checked = ib.verify(tmp_path / "imagenette2-sample-48.tgz", manifest=str(manifest_path), jobs=1)
    assert checked["passed"] is True
    with pytest.raises(ib.UserError, match="is not a size"):
        ib.build(root, sizes=["tiny"])
    with pytest.raises(ib.UserError, match="no such folder"):
        ib.build(tmp_path / "missing", sizes=[48])
    with pytest.raises(ib.DataError, match="listed images are missing"):  # a DataError is a UserError
        ib.build(root, sizes=[48], out=tmp_path / "x", jobs=1)  # the whole imagenette2 list: most are missing


# ----------------------------------------------------------------------------- cache policy


def test_the_default_cache_is_removed_after_a_build_unless_kept(sample, tmp_path):
    root, manifest_path = sample
    r = run_cli("--imagenet", root, "--manifest", manifest_path, "--size", "48", "--out", tmp_path / "a")
    assert r.returncode == 0 and re.search(r"removed the resize cache .* \([0-9,]+ [km]B\)", r.stderr)
    assert not (tmp_path / "a" / ".imagenette-cache").exists()
    r = run_cli("--imagenet", root, "--manifest", manifest_path, "--size", "48", "--out", tmp_path / "b", "--keep-cache")
    assert r.returncode == 0 and (tmp_path / "b" / ".imagenette-cache" / "packs").is_dir()
    shared = tmp_path / "shared"
    assert run_cli("--imagenet", root, "--manifest", manifest_path, "--size", "48", "--out", tmp_path / "c",
                   "--cache", shared, "-q").returncode == 0
    assert any((shared / "packs").iterdir())


def test_rerun_after_an_interrupted_build_reuses_the_cache_and_gives_the_same_bytes(sample, tmp_path):
    """The cache is for this: a build killed half way leaves it, and the rerun uses it."""
    root, manifest_path = sample
    proc = subprocess.Popen(fk.paused_cli_command("commit", 60, "--imagenet", root, "--manifest", manifest_path,
                                                  "--size", "48", "--out", tmp_path, "--format", "tgz",
                                                  "--format", "webdataset"),
                            stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if "test-pause commit" in line:
            break
    proc.kill()
    proc.wait()
    r = run_cli("--imagenet", root, "--manifest", manifest_path, "--size", "48", "--out", tmp_path, "--json", "-q",
                "--format", "tgz", "--format", "webdataset")
    report = json.loads(r.stdout)
    assert report["cache"]["hits"] == 50 and report["cache"]["misses"] == 0
    fresh = tmp_path / "fresh"
    assert run_cli("--imagenet", root, "--manifest", manifest_path, "--size", "48", "--out", fresh, "-q",
                   "--format", "tgz", "--format", "webdataset", "--no-cache").returncode == 0
    assert (fresh / "SHA256SUMS").read_text() == (tmp_path / "SHA256SUMS").read_text()


# ----------------------------------------------------------------------------- from nothing to a training batch


def _readme_commands(section: str) -> list[list[str]]:
    """The `imagenette-build` lines of the first code block of a README section, as arguments."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    body = text.split(f"\n## {section}\n", 1)[1]
    block = body.split("```", 2)[1]
    return [shlex.split(line)[1:] for line in block.splitlines() if line.startswith("imagenette-build ")]


def test_from_nothing_to_a_training_batch(tmp_path):
    """README "From nothing to a training batch", its commands as written (in `tmp_path`): a
    synthetic ImageNet of 5 train and 1 val image a class with its manifest, built at 160 px,
    extracted; then what ImageFolder reads there (the README's DataLoader where torchvision is
    installed)."""
    commands = _readme_commands("From nothing to a training batch")
    assert [c[0] for c in commands] == ["sample-imagenet", "--imagenet", "extract"]
    for args in commands:
        r = run_cli(*args, "-q", cwd=tmp_path)
        assert r.returncode == 0, (args, r.stderr)
    train = tmp_path / "data" / "imagenette2-sample-160" / "train"
    classes = sorted(p.name for p in train.iterdir())  # ImageFolder's classes: the folders, sorted
    assert classes == sorted(manifests.load("imagenette2").wnids) and classes[:3] == ["n01440764", "n02102040",
                                                                                       "n02979186"]
    for wnid in classes:
        images = sorted((train / wnid).iterdir())
        assert len(images) == 5
        for path in images:
            with Image.open(path) as im:
                assert im.format == "JPEG" and min(im.size) == 160 and im.convert("RGB").mode == "RGB"
    assert sum(1 for _ in (train.parent / "val").rglob("*.JPEG")) == 10
    try:
        import torch
        from torchvision import datasets, transforms
    except ImportError:
        return  # (not in the test extra: the structure above is what ImageFolder reads)
    tf = transforms.Compose([transforms.RandomResizedCrop(128), transforms.ToTensor()])
    data = datasets.ImageFolder(str(train), transform=tf)
    images, labels = next(iter(torch.utils.data.DataLoader(data, batch_size=16, shuffle=True, num_workers=2)))
    assert tuple(images.shape) == (16, 3, 128, 128) and data.classes[:3] == classes[:3]
