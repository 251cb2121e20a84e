"""ImageNet read where it lies: the original ILSVRC-2012 tars and the Hugging Face shards.

The same synthetic subset is written by the generator in every layout (tests/conftest.py); an
archive built from any of them must be byte-identical to the one built from extracted folders.
"""

import io
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from imagenette_build import classes
from imagenette_build import manifest as manifests
from imagenette_build.errors import DataError, UserError
from imagenette_build.progress import Progress
from imagenette_build.samplegen import LAYOUTS, synthetic_jpeg
from imagenette_build.sources import hf_parquet, ilsvrc_tars, open_source, tarscan
from imagenette_build.sources.hf_shards import imagenet_name
from imagenette_build.sources.labels import parse_devkit_ground_truth

from ..conftest import run_cli

ARCHIVED = ("ilsvrc-tars", "hf-shards", "hf-parquet")
IMAGENETTE = manifests.load("imagenette2").wnids


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


# -- the tar-header scanner ------------------------------------------------------------------------

def _tar_bytes(fmt, members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, data in members:
            if data is None:
                info = tarfile.TarInfo(name)
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_scanner_agrees_with_tarfile(fmt, tmp_path):
    long_dir = "d" * 90 + "/" + "e" * 60  # > 100 characters: prefix field, GNU long name or pax path
    members = [("a.JPEG", b"x" * 700), ("dir", None), (f"{long_dir}/b.JPEG", b"y" * 512),
               ("empty.JPEG", b""), ("c.JPEG", b"z" * 1)]
    if fmt == tarfile.PAX_FORMAT:
        members.append(("ünïcödé_" + "f" * 120 + ".JPEG", b"w" * 3))
    data = _tar_bytes(fmt, members)
    path = tmp_path / "t.tar"
    path.write_bytes(b"PREFIX" * 100 + data)  # a tar inside a bigger file, as a class tar is
    start = 600
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        expected = [(t.name, start + t.offset_data, t.size) for t in tar if t.isfile()]
    with open(path, "rb", buffering=0) as f:
        got = [(m.name, m.offset, m.size) for m in tarscan.scan_members(f, "t.tar", start, start + len(data))]
    assert got == expected
    with open(path, "rb") as f:  # the bytes at those offsets are the members
        for (name, offset, size), (_, want) in zip(got, [m for m in members if m[1] is not None]):
            f.seek(offset)
            assert f.read(size) == want
    streamed = list(tarscan.stream_members(io.BytesIO(data), "t.tar", lambda n: not n.startswith("c")))
    assert [(n, d) for n, d in streamed] == [(n, d) for n, d in members if d is not None and not n.startswith("c")]


def _gnu_header(name, size):
    info = tarfile.TarInfo(name)
    info.size = size
    return info.tobuf(tarfile.GNU_FORMAT)


def test_locating_10_classes_among_1000_reads_only_headers(tmp_path, monkeypatch):
    """A 1000-class train tar, the 10 wanted classes last, the other 990 sparse (never written, 36 GB
    on paper, one of them 20 GiB: a base-256 size). Reading their data would take minutes; the
    scan must read exactly one 512-byte header per class tar and per image, and nothing else."""
    decoys = [c.wnid for c in classes.all_classes() if c.wnid not in IMAGENETTE]
    images = {w: [f"{w}_{k}.JPEG" for k in range(3)] for w in IMAGENETTE}
    path = tmp_path / ilsvrc_tars.TRAIN_TAR
    with open(path, "wb") as f:
        for i, wnid in enumerate(decoys):
            size = (20 << 30) if i == 500 else (16 << 20)
            f.write(_gnu_header(f"{wnid}.tar", size))
            f.seek(size, os.SEEK_CUR)  # a hole: the data is never written
        for wnid in IMAGENETTE:
            inner = _tar_bytes(tarfile.GNU_FORMAT, [(n, synthetic_jpeg(n)[:2000]) for n in images[wnid]])
            f.write(_gnu_header(f"{wnid}.tar", len(inner)))
            f.write(inner)
        f.write(bytes(1024))
    assert path.stat().st_size > 36e9

    reads = []
    real = tarscan.read_at
    monkeypatch.setattr(tarscan, "read_at", lambda f, off, n: reads.append(n) or real(f, off, n))
    source = ilsvrc_tars.OriginalTarsSource(tmp_path, path, None)
    source.select(IMAGENETTE, Progress(quiet=True))
    found = {w: list(source.images(w)) for w in IMAGENETTE}

    inner_headers = sum(len(v) + 1 for v in images.values())  # each image + the end-of-archive block
    assert sum(reads) == 512 * (1000 + inner_headers)  # 1000 outer headers: ~0.5 MB of a 36 GB file
    for wnid, imgs in found.items():
        assert sorted(im.filename for im in imgs) == sorted(images[wnid])
        for im in imgs:
            assert im.ref.path == str(path) and im.ref.read() == synthetic_jpeg(im.filename)[:2000]


def test_truncated_headers_and_members_are_errors(tmp_path):
    data = _tar_bytes(tarfile.GNU_FORMAT, [("a.JPEG", b"a" * 1000), ("b.JPEG", b"b" * 1000)])
    path = tmp_path / "t.tar"
    for cut, needle in ((1536 + 700, "b.JPEG needs 1000 bytes"), (1536 + 100, "inside a header")):
        path.write_bytes(data[:cut])
        with open(path, "rb", buffering=0) as f, pytest.raises(DataError, match=f"t.tar: truncated.*{needle}"):
            list(tarscan.scan_members(f, "t.tar"))
        with pytest.raises(DataError, match="t.tar: truncated"):
            list(tarscan.stream_members(io.BytesIO(data[:cut]), "t.tar", lambda n: True))
    path.write_bytes(b"not a tar file at all" * 100)
    with open(path, "rb", buffering=0) as f, pytest.raises(DataError, match="not a tar file or corrupt"):
        list(tarscan.scan_members(f, "t.tar"))


# -- names and labels ------------------------------------------------------------------------------

def test_hugging_face_names_map_back_to_imagenet_names():
    assert imagenet_name("n01440764_10026_n01440764.JPEG", "s") == ("n01440764_10026.JPEG", "n01440764")
    assert imagenet_name("train/n01440764_10026_n01440764.JPEG", "s") == ("n01440764_10026.JPEG", "n01440764")
    assert imagenet_name("ILSVRC2012_val_00000001_n01751748.JPEG", "s") == \
        ("ILSVRC2012_val_00000001.JPEG", "n01751748")
    with pytest.raises(DataError, match="does not end in _<wnid>.JPEG"):
        imagenet_name("ILSVRC2012_test_00000001.JPEG", "s")
    with pytest.raises(DataError, match="names two classes"):
        imagenet_name("n01440764_10026_n02102040.JPEG", "s")


def _ground_truth(per_class=50, lines=50_000):
    ids = [1 + (n % 1000) for n in range(lines)]
    if per_class != 50:
        ids[0] = ids[1]  # one class 51 times, another 49
    return "".join(f"{i}\n" for i in ids)


def test_devkit_ground_truth_checks():
    labels = parse_devkit_ground_truth(_ground_truth(), "gt")
    assert labels["ILSVRC2012_val_00000001.JPEG"] == "n02119789"  # devkit ID 1: kit fox, not tench
    with pytest.raises(UserError, match="expected 50000 labels"):
        parse_devkit_ground_truth(_ground_truth(lines=49_999), "gt")
    with pytest.raises(UserError, match="does not match ILSVRC-2012.*has 49"):
        parse_devkit_ground_truth(_ground_truth(per_class=49), "gt")
    with pytest.raises(UserError, match="line 3: '1001' is not a devkit class ID"):
        parse_devkit_ground_truth("1\n2\n1001\n" + "1\n" * 49_997, "gt")


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
        _write_devkit(devkit, {gt: _ground_truth(lines=49_999)})
    elif case == "counts":
        _write_devkit(devkit, {gt: _ground_truth(per_class=49)})
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


# -- Hugging Face shards: one pass, a spill file that goes away ------------------------------------

def test_hf_shards_spill_only_the_planned_classes(archived_layouts, tmp_path, monkeypatch):
    root, _ = archived_layouts["hf-shards"]
    monkeypatch.setenv("IMAGENETTE_BUILD_TMPDIR", str(tmp_path))
    source = open_source(root)
    source.select(IMAGENETTE, Progress(quiet=True))
    spill = source.spill.path
    assert spill.parent.parent == tmp_path
    found = [im for w in IMAGENETTE for im in source.images(w)]
    assert len(found) == 50 and {im.wnid for im in found} == set(IMAGENETTE)
    assert all(im.ref.read() == synthetic_jpeg(im.filename) for im in found)
    assert spill.stat().st_size == sum(len(synthetic_jpeg(im.filename)) for im in found)  # no decoys
    source.close()
    assert list(tmp_path.iterdir()) == []


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


def test_parquet_reads_only_row_groups_with_planned_classes(archived_layouts, tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    root, _ = archived_layouts["hf-parquet"]
    monkeypatch.setenv("IMAGENETTE_BUILD_TMPDIR", str(tmp_path))
    wanted = {classes.by_wnid()[w].index for w in IMAGENETTE}
    groups = {}  # (file, row group) -> labels, read independently
    for path in sorted((root / "data").glob("*.parquet")):
        pf = pq.ParquetFile(path)
        for rg in range(pf.metadata.num_row_groups):
            groups[(path.name, rg)] = set(pf.read_row_group(rg, columns=["label"]).column(0).to_pylist())
    needed = {k for k, labels in groups.items() if labels & wanted}
    assert 0 < len(needed) < len(groups)  # the sample has row groups of decoys only

    image_reads = []
    real_init, real_read = pq.ParquetFile.__init__, pq.ParquetFile.read_row_group

    def init(self, source, *a, **kw):
        self.test_name = Path(source).name
        real_init(self, source, *a, **kw)

    def read_row_group(self, i, columns=None, **kw):
        if columns and "image" in columns:
            image_reads.append((self.test_name, i))
        return real_read(self, i, columns=columns, **kw)

    monkeypatch.setattr(pq.ParquetFile, "__init__", init)
    monkeypatch.setattr(pq.ParquetFile, "read_row_group", read_row_group)
    source = open_source(root)
    assert isinstance(source, hf_parquet.HFParquetSource)
    source.select(IMAGENETTE, Progress(quiet=True))
    assert set(image_reads) == needed and len(image_reads) == len(needed)
    found = [im for w in IMAGENETTE for im in source.images(w)]
    assert len(found) == 50 and all(im.ref.read() == synthetic_jpeg(im.filename) for im in found)
    assert all((im.split == "val") == im.filename.startswith("ILSVRC2012_val_") for im in found)
    source.close()
    assert list(tmp_path.iterdir()) == []


def test_parquet_without_pyarrow_says_how_to_install(archived_layouts, tmp_path):
    import subprocess
    import sys

    root, manifest_path = archived_layouts["hf-parquet"]
    code = ("import sys; sys.modules['pyarrow'] = None; sys.modules['pyarrow.parquet'] = None; "
            "from imagenette_build.cli import main; sys.argv = ['imagenette-build'] + sys.argv[1:]; main()")
    r = subprocess.run([sys.executable, "-c", code, "--imagenet", str(root), "--manifest", str(manifest_path),
                        "--dry-run", "-q"], capture_output=True, text=True)
    one_line_error(r, 2, "needs pyarrow", "pip install 'imagenette-build[parquet]'")


def test_spill_gives_back_each_class_s_images_with_their_bytes(tmp_path, monkeypatch):
    """The one-pass layouts keep what they spilled per class compactly (names in one bytearray,
    ranges in one array), not as objects: the same images, split and bytes come back."""
    from imagenette_build.sources.spill import TMPDIR_ENV, Spill

    monkeypatch.setenv(TMPDIR_ENV, str(tmp_path))
    spill = Spill("test")
    added = [("train", "n01440764", "n01440764_1.JPEG", b"a" * 10), ("val", "n01443537", "ILSVRC2012_val_1.JPEG", b""),
             ("train", "n01440764", "odd \udcff name.JPEG", b"bb"), ("val", "n01440764", "ILSVRC2012_val_2.JPEG", b"c")]
    for split, wnid, filename, data in added:
        spill.add(split, wnid, filename, data)
    spill.finish()
    for wnid in ("n01440764", "n01443537"):
        got = [(im.split, im.wnid, im.filename, im.ref.read()) for im in spill.images(wnid)]
        assert got == [a for a in added if a[1] == wnid]
    assert list(spill.images("n02102040")) == []
    spill.remove()
