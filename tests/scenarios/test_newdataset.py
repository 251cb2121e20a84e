"""New datasets through the command line: `classes`, `new-manifest` in each mode and its errors, and
a new manifest built into an archive with its generated noisy_<name>.csv, which verify checks.
(Class search, seeded splits and noisy labels by themselves: unit/test_newdataset.py,
unit/test_plan.py, unit/test_noisy.py.)"""

import hashlib
import io
import json
import tarfile

import pytest

from imagenette_build import manifest as manifests

from ..conftest import GOLDEN_NOISY, run_cli


def test_classes_command():
    r = run_cli("classes", "crane")
    assert r.returncode == 0
    assert r.stdout.splitlines() == ["n02012849   134  crane", "n03126707   517  crane"]
    r = run_cli("classes", "tench", "--json")
    assert json.loads(r.stdout) == [{"wnid": "n01440764", "index": 0, "devkit_id": 449, "names": ["tench", "Tinca tinca"]}]
    r = run_cli("classes", "no-such-thing")
    assert r.returncode == 1 and "no class matches" in r.stderr


def test_new_manifest_modes(tmp_path):
    wnids_file = tmp_path / "birds.txt"
    wnids_file.write_text("# my birds\nn01530575  brambling\nn01531178\n")
    runs = {
        "a": ["--wnid", "n01440764", "--wnid", "n02102040"],
        "b": ["--classes-file", wnids_file, "--split", "imagenet"],
        "c": ["--random", "12", "--seed", "3", "--val-fraction", "0.25"],
    }
    for name, args in runs.items():
        out = tmp_path / f"{name}.toml"
        r = run_cli("new-manifest", name, *args, "--out", out)
        assert r.returncode == 0, r.stderr
        m = manifests.load_path(out)
        assert m.name == name and m.noisy_labels_file == f"noisy_{name}.csv"
    assert manifests.load_path(tmp_path / "a.toml").wnids == ("n01440764", "n02102040")
    assert manifests.load_path(tmp_path / "a.toml").classes[0].name == "tench"
    assert manifests.load_path(tmp_path / "b.toml").split.policy == "imagenet"
    c = manifests.load_path(tmp_path / "c.toml")
    assert len(c.wnids) == 12 and c.split.val_fraction == 0.25 and c.split.seed == 3


@pytest.mark.parametrize("args,code,needle", [
    (["--wnid", "n0144"], 2, "malformed WNID"),
    (["--wnid", "n99999999"], 2, "not one of the 1000"),
    (["--wnid", "n01440764", "--wnid", "n01440764"], 2, "given twice"),
    (["--wnid", "n01440764", "--random", "3"], 2, "exactly one of"),
    ([], 2, "exactly one of"),
])
def test_new_manifest_errors(tmp_path, args, code, needle):
    r = run_cli("new-manifest", "x", *args, "--out", tmp_path / "x.toml")
    assert r.returncode == code and needle in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x.toml").exists()


def test_new_manifest_refuses_to_overwrite(tmp_path):
    out = tmp_path / "x.toml"
    out.write_text("mine")
    r = run_cli("new-manifest", "x", "--wnid", "n01440764", "--out", out)
    assert r.returncode == 2 and "already exists" in r.stderr and out.read_text() == "mine"


def test_manifest_from_new_manifest_builds_with_noisy_csv(new_dataset, tmp_path):
    m, path, roots = new_dataset
    r = run_cli("--imagenet", roots["flat-devkit"], "--manifest", path, "--size", "48", "--out", tmp_path, "-q")
    assert r.returncode == 0, r.stderr
    with tarfile.open(tmp_path / "six-48.tgz") as tar:
        names = tar.getnames()
        shipped = tar.extractfile("six-48/noisy_six.csv").read()
    assert names[:2] == ["six-48", "six-48/noisy_six.csv"]
    assert hashlib.sha256(shipped).hexdigest() == GOLDEN_NOISY
    report = json.loads((tmp_path / "six-48.json").read_text())
    assert report["root_files"] == ["noisy_six.csv"]
    r = run_cli("verify", tmp_path / "six-48.tgz", "--manifest", path, "-q", "-j", "1")
    assert r.returncode == 0, r.stdout


def test_verify_fails_a_generated_noisy_csv_with_a_row_too_many(new_dataset, tmp_path):
    """A name with a line break, written unquoted by an old version, gave an extra row that verify
    passed: the CSV must hold one row per labelled image, no more."""
    m, path, roots = new_dataset
    out = tmp_path / "out"
    assert run_cli("--imagenet", roots["folders"], "--manifest", path, "--size", "48", "--out", out, "-q").returncode == 0
    forged = tmp_path / "forged"
    forged.mkdir()
    with tarfile.open(out / "six-48.tgz") as tin, tarfile.open(forged / "six-48.tgz", "w:gz") as tout:
        for info in tin:
            data = tin.extractfile(info).read() if info.isfile() else None
            if info.name.endswith("noisy_six.csv"):
                data += b"train/n01440764/extra.JPEG,n01440764,n01440764,n01440764,n01440764,n01440764,False\n"
                info.size = len(data)
            tout.addfile(info, io.BytesIO(data) if data is not None else None)
    r = run_cli("verify", forged / "six-48.tgz", "--manifest", path, "-q", "-j", "1", "--json")
    assert r.returncode == 1
    structure = json.loads(r.stdout)["levels"][1]
    assert structure["problems"] == ["root file six-48/noisy_six.csv: 1 bad rows: line 146 (not an image of the archive)"]
