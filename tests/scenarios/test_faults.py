"""Bad input: every kind of bad source image, bad ImageNet folder, bad manifest and bad
output folder ends in a correct archive or a one-line error naming the file, with its documented
exit code, and nothing incomplete or stale under a final name (docs/faults.md has the table).
(Each image kind as a worker sees it: unit/test_worker.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from .. import faultkit as fk
from ..conftest import run_cli

TRAIN_CLASSES = ["n01440764", "n02102040", "n02979186", "n03000684", "n03028079", "n03394916",
                 "n03417042", "n03425413", "n03445777", "n03888257"]


# ------------------------------------------------------------------------------ source images


@pytest.fixture
def damaged(sample, tmp_path):
    """A copy of the sample with one train image of a different class replaced by each broken kind,
    and the converted kinds in other slots. {kind: source path}."""
    root, manifest_path = sample
    copy = fk.copy_imagenet(root, tmp_path / "imagenet")
    kinds = [*fk.BROKEN, "symlink_loop"]
    members = {}
    for i, kind in enumerate(kinds):
        wnid = TRAIN_CLASSES[i % len(TRAIN_CLASSES)]
        path = fk.class_files(copy, "train", wnid)[i // len(TRAIN_CLASSES)]
        fk.install(path, kind)
        members[kind] = path
    for i, kind in enumerate(fk.CONVERTED):
        wnid = TRAIN_CLASSES[i % len(TRAIN_CLASSES)]
        path = fk.class_files(copy, "train", wnid)[2 + i // len(TRAIN_CLASSES)]
        fk.install(path, kind)
        members[kind] = path
    return copy, manifest_path, members


def test_broken_images_stop_the_build_before_any_archive(damaged, tmp_path):
    copy, manifest_path, members = damaged
    out = tmp_path / "out"
    (out).mkdir()
    r = run_cli("--imagenet", copy, "--manifest", manifest_path, "--size", "64", "--out", out, "-q")
    n_broken = len(fk.BROKEN) + 1
    line = fk.one_line_error(r, 1, f"{n_broken} source images could not be read, no archive written",
                             "--skip-broken")
    assert sum(str(path) in line for path in members.values()) == 5  # the first five, by name
    assert [p.name for p in out.iterdir()] == [fk.CACHE]


def test_skip_broken_builds_without_them_and_names_each(damaged, tmp_path):
    copy, manifest_path, members = damaged
    out = tmp_path / "out"
    r = run_cli("--imagenet", copy, "--manifest", manifest_path, "--size", "64", "--size", "full",
                "--out", out, "--skip-broken", "-q")
    assert r.returncode == 0, r.stderr
    broken = {k: v for k, v in members.items() if k not in fk.CONVERTED}
    warning, *lines = r.stderr.splitlines()
    assert warning.startswith(f"imagenette-build: warning: built without {len(broken)} listed images")
    for kind, path in broken.items():
        [line] = [ln for ln in lines if f"{path}:" in ln]
        assert line.startswith("  skipped ")
        phrase = "too many levels" if kind == "symlink_loop" else fk.BROKEN[kind][1][0]
        assert phrase in line, line
    report = json.loads((out / "imagenette2-sample-64.json").read_text())
    assert {s["source"] for s in report["skipped"]} == {str(p) for p in broken.values()}
    assert all(s["member"].endswith("/" + Path(s["source"]).name) for s in report["skipped"])
    assert report["images"] == 50 - len(broken)
    assert sum(sum(c.values()) for c in report["counts"].values()) == 50 - len(broken)
    # Built alone, full size does not decode: its cheaper check refuses exactly the same files.
    r = run_cli("--imagenet", copy, "--manifest", manifest_path, "--size", "full", "--out", tmp_path / "full",
                "--skip-broken", "--json", "-q")
    assert r.returncode == 0, r.stderr
    assert {s["source"] for s in json.loads(r.stdout)["skipped"]} == {str(p) for p in broken.values()}
    for name in ("imagenette2-sample-64.tgz", "imagenette2-sample.tgz"):
        with tarfile.open(out / name) as tar:
            files = {t.name.split("/", 1)[1] for t in tar if t.isfile()}
        names = {f.rsplit("/", 1)[-1] for f in files}
        assert not names & {p.name for p in broken.values()}
        assert {p.name for k, p in members.items() if k in fk.CONVERTED} <= names
    fk.assert_consistent(out)
    assert subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=out).returncode == 0


def test_skip_broken_with_generated_noisy_labels_leaves_them_out_of_the_csv(sample, tmp_path):
    """A manifest without a published list generates noisy_<name>.csv at the archive root: it must
    not name an image the archive does not hold (the archives are written again without them)."""
    root, _ = sample
    copy = fk.copy_imagenet(root, tmp_path / "imagenet")
    victim = fk.class_files(copy, "train", "n01440764")[0]
    fk.install(victim, "truncated")
    manifest = tmp_path / "two.toml"
    manifest.write_text('name = "two"\nstem = "two"\n[split]\npolicy = "imagenet"\n'
                        '[[classes]]\nwnid = "n01440764"\n[[classes]]\nwnid = "n02102040"\n')
    out = tmp_path / "out"
    r = run_cli("--imagenet", copy, "--manifest", manifest, "--size", "32", "--out", out, "--skip-broken", "--json", "-q")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert [s["member"] for s in report["skipped"]] == [f"train/n01440764/{victim.name}"]
    with tarfile.open(out / "two-32.tgz") as tar:
        csv_text = tar.extractfile("two-32/noisy_two.csv").read().decode()
        members = [t.name for t in tar if t.isfile() and t.name.endswith(".JPEG")]
    assert victim.name not in csv_text
    assert len(csv_text.strip().splitlines()) - 1 == len(members) == report["images"]
    # the second pass came from the cache: every image made once
    assert report["cache"]["written"] == report["images"]


def test_unreadable_image(sample, tmp_path):
    prefix = fk.drop_root_file_access()
    if prefix is None:
        pytest.skip("running as root without setpriv: file permissions cannot be enforced here")
    root, manifest_path = sample
    copy = fk.copy_imagenet(root, tmp_path / "imagenet")
    victim = fk.class_files(copy, "train", "n03394916")[0]
    victim.chmod(0)
    out = tmp_path / "out"
    r = subprocess.run([*prefix, *fk.cli_command("--imagenet", copy, "--manifest", manifest_path, "--size", "32",
                                                 "--out", out, "-q")], capture_output=True, text=True)
    fk.one_line_error(r, 1, "1 source images could not be read", f"{victim}: permission denied")
    assert [p.name for p in out.iterdir()] == [fk.CACHE]


# ------------------------------------------------------------------------------ the ImageNet folder


def test_missing_class_and_empty_class_folder(sample, tmp_path):
    root, manifest_path = sample
    copy = fk.copy_imagenet(root, tmp_path / "imagenet")
    assert not (copy / "val" / "n03000684").exists() and not (copy / "val" / "n03028079").exists()
    for p in fk.class_files(copy, "train", "n03000684"):
        p.unlink()  # an empty class folder
    for p in fk.class_files(copy, "train", "n03028079"):
        p.unlink()
    (copy / "train" / "n03028079").rmdir()  # a missing class
    out = tmp_path / "out"
    r = run_cli("--imagenet", copy, "--manifest", manifest_path, "--out", out, "-q")
    fk.one_line_error(r, 1, "10 of 50 listed images are missing", "classes with no images at all",
                      f"n03000684: nothing in {copy / 'train' / 'n03000684'}/", "n03028079", "--skip-broken")
    assert not out.exists()


def test_missing_listed_files_with_skip_broken(sample, tmp_path):
    root, manifest_path = sample
    copy = fk.copy_imagenet(root, tmp_path / "imagenet")
    gone = fk.class_files(copy, "train", "n01440764")[0]
    gone.unlink()
    out = tmp_path / "out"
    r = run_cli("--imagenet", copy, "--manifest", manifest_path, "--size", "32", "--out", out, "--skip-broken", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    [skipped] = report["skipped"]
    assert skipped["member"].endswith(f"/n01440764/{gone.name}") and skipped["source"] is None
    assert f"skipped {skipped['member']}: missing from" in r.stderr
    assert report["images"] == 49
    fk.assert_consistent(out)


def test_symlink_loop_as_class_folder(sample, tmp_path):
    root, manifest_path = sample
    copy = fk.copy_imagenet(root, tmp_path / "imagenet")
    folder = copy / "train" / "n02979186"
    for p in folder.iterdir():
        p.unlink()
    folder.rmdir()
    folder.symlink_to("n02979186")
    r = run_cli("--imagenet", copy, "--manifest", manifest_path, "--out", tmp_path / "out", "-q")
    fk.one_line_error(r, 2, str(folder), "too many levels of symbolic links")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------ manifests and their lists


def _manifest_copy(manifest_path: Path, dest: Path, toml_edit=None, csv_edit=None) -> Path:
    dest.mkdir()
    src = Path(manifest_path)
    for f in src.parent.iterdir():
        if f.is_file():
            (dest / f.name).write_bytes(f.read_bytes())
    if toml_edit:
        p = dest / src.name
        p.write_text(toml_edit(p.read_text()))
    if csv_edit:
        p = dest / "noisy_imagenette.csv"
        p.write_text(csv_edit(p.read_text()))
    return dest / src.name


@pytest.mark.parametrize("what,toml_edit,csv_edit,needles", [
    ("WNID typo", lambda t: t.replace('"n01440764"', '"n0144O764"', 1), None,
     ["malformed WNID 'n0144O764'"]),
    ("unknown WNID", lambda t: t.replace('"n01440764"', '"n01440765"', 1), None,
     ["n01440765 is not one of the 1000 ILSVRC-2012 classes"]),
    ("wrong CSV header", None, lambda c: c.replace("path,", "paths,", 1),
     ["the first line must be a header with a 'path' column"]),
    ("duplicate row", None, lambda c: c + c.splitlines()[1] + "\n",
     ["is listed twice (first on line 2)"]),
    ("path outside train/val", None, lambda c: c.replace("train/", "test/", 1),
     ["split 'test'", "is not one of train, val"]),
    ("path with ..", None, lambda c: c.replace("train/", "../train/", 1),
     ["is not <split>/<wnid>/<file>"]),
    ("not UTF-8", None, None, ["not a UTF-8 text file"]),
])
def test_bad_manifest_or_list_is_one_line_exit_2(sample, tmp_path, what, toml_edit, csv_edit, needles):
    root, manifest_path = sample
    if what == "not UTF-8":
        bad = _manifest_copy(manifest_path, tmp_path / "m")
        csv = bad.parent / "noisy_imagenette.csv"
        csv.write_bytes(csv.read_bytes().replace(b"n0", b"\xff", 1))
    else:
        bad = _manifest_copy(manifest_path, tmp_path / "m", toml_edit, csv_edit)
    out = tmp_path / "out"
    r = run_cli("--imagenet", root, "--manifest", bad, "--out", out, "-q")
    fk.one_line_error(r, 2, *needles)
    assert str(bad.parent) in r.stderr  # names the file
    assert not out.exists()


# ------------------------------------------------------------------------------ the output folder


def test_output_folder_not_writable(sample, tmp_path):
    prefix = fk.drop_root_file_access()
    if prefix is None:
        pytest.skip("running as root without setpriv: file permissions cannot be enforced here")
    root, manifest_path = sample
    out = tmp_path / "readonly"
    out.mkdir()
    out.chmod(0o555)
    try:
        r = subprocess.run([*prefix, *fk.cli_command("--imagenet", root, "--manifest", manifest_path, "--size", "32",
                                                     "--out", out, "-q")], capture_output=True, text=True)
        fk.one_line_error(r, 1, str(out), "permission denied")
        r = subprocess.run([*prefix, *fk.cli_command("--imagenet", root, "--manifest", manifest_path, "--size", "32",
                                                     "--out", out / "sub", "-q")], capture_output=True, text=True)
        fk.one_line_error(r, 1, f"--out {out / 'sub'}: cannot create the folder", "permission denied")
    finally:
        out.chmod(0o755)
    assert list(out.iterdir()) == []


def test_output_below_a_file(sample, tmp_path):
    root, manifest_path = sample
    (tmp_path / "file").write_text("x")
    r = run_cli("--imagenet", root, "--manifest", manifest_path, "--out", tmp_path / "file" / "out", "-q")
    fk.one_line_error(r, 1, "cannot create the folder", "not a directory")


def test_cache_option_that_is_a_file(sample, tmp_path):
    root, manifest_path = sample
    (tmp_path / "file").write_text("x")
    out = tmp_path / "out"
    r = run_cli("--imagenet", root, "--manifest", manifest_path, "--out", out, "--cache", tmp_path / "file", "-q")
    fk.one_line_error(r, 2, f"--cache {tmp_path / 'file'}: cannot use it as the cache folder")
    assert list(out.iterdir()) == []


def test_full_disk_simulated_with_rlimit_fsize(sample, tmp_path):
    """Files may not grow past 64 kB: the 160 px archive (~500 kB) cannot be written. The archive of the earlier
    build, its sums line and report stay as they were; nothing new appears under a final name."""
    root, manifest_path = sample
    out = tmp_path / "out"
    r = run_cli("--imagenet", root, "--manifest", manifest_path, "--size", "8", "--out", out, "-q")
    assert r.returncode == 0, r.stderr
    before = fk.assert_consistent(out)
    assert (out / "imagenette2-sample-8.tgz").stat().st_size < (64 << 10)
    r = subprocess.run(fk.cli_command("--imagenet", root, "--manifest", manifest_path, "--size", "160", "--out", out, "-q"),
                       capture_output=True, text=True, preexec_fn=fk.limit_file_size(64 << 10))
    fk.one_line_error(r, 1, "imagenette2-sample-160.tgz", "cannot write", "file too large")
    assert fk.assert_consistent(out) == before
    assert set(fk.parse_sums(out / "SHA256SUMS")) == {f"imagenette2-sample-8.{e}" for e in
                                                    ("tgz", "provenance.csv", "README.md", "preview.png")}


def test_full_disk_on_a_small_tmpfs(sample, tmp_path):
    """A real ENOSPC: a 256 kB tmpfs (needs root with CAP_SYS_ADMIN, else skipped)."""
    root, manifest_path = sample
    mnt = tmp_path / "small"
    fk.mount_small_tmpfs(mnt, "256k")
    try:
        r = run_cli("--imagenet", root, "--manifest", manifest_path, "--size", "128", "--out", mnt, "-q")
        fk.one_line_error(r, 1, "cannot write", "no space left on device")
        fk.assert_consistent(mnt)
        assert not any(n.endswith(".tgz") for n in os.listdir(mnt))
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
