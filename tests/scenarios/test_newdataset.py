"""New datasets: class search, new-manifest, seeded splits, noisy labels, extra splits."""

import csv
import hashlib
import io
import json
import tarfile

import pytest

from imagenette_build import manifest as manifests
from imagenette_build.newdataset import random_classes, search
from imagenette_build.noisy import HEADER, NoisyCsv, flip_count, noisy_csv
from imagenette_build.plan import make_plan
from imagenette_build.samplegen import SampleSpec, generate
from imagenette_build.sources import open_source

from ..conftest import run_cli


def test_search_shows_every_class_of_a_repeated_name():
    assert [c.wnid for c in search("crane")] == ["n02012849", "n03126707"]
    assert [c.wnid for c in search("MAILLOT")] == ["n03710637", "n03710721"]
    assert [c.wnid for c in search("n01440764")] == ["n01440764"]
    assert "n02096294" in {c.wnid for c in search("australian terrier")}
    assert len(search(None)) == 1000


def test_classes_command():
    r = run_cli("classes", "crane")
    assert r.returncode == 0
    assert r.stdout.splitlines() == ["n02012849   134  crane", "n03126707   517  crane"]
    r = run_cli("classes", "tench", "--json")
    assert json.loads(r.stdout) == [{"wnid": "n01440764", "index": 0, "devkit_id": 449, "names": ["tench", "Tinca tinca"]}]
    r = run_cli("classes", "no-such-thing")
    assert r.returncode == 1 and "no class matches" in r.stderr


def test_random_classes_are_seeded_and_stable():
    # Golden values: the documented sha256 ranking must never change between versions.
    assert random_classes(5, 1) == ["n01675722", "n02321529", "n02869837", "n04277352", "n12998815"]
    assert random_classes(5, 1) == random_classes(5, 1)
    assert random_classes(5, 2) != random_classes(5, 1)
    assert len(set(random_classes(100, 7))) == 100


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


@pytest.fixture(scope="module")
def custom(tmp_path_factory):
    base = tmp_path_factory.mktemp("custom")
    path = base / "six.toml"
    r = run_cli("new-manifest", "six", "--random", "6", "--seed", "11", "--out", path)
    assert r.returncode == 0, r.stderr
    m = manifests.load_path(path)
    roots = {}
    for layout in ("folders", "flat-devkit"):
        roots[layout] = base / layout
        generate(SampleSpec(out=roots[layout], layout=layout, per_class=20), m, jobs=1)
    return m, path, roots


def _members_hash(plan):
    return hashlib.sha256("\n".join(p.member for p in plan.images).encode()).hexdigest()


def test_random_split_is_stratified_seeded_and_layout_independent(custom):
    m, _, roots = custom
    plans = [make_plan(m, open_source(root)) for root in roots.values()]
    assert [p.member for p in plans[0].images] == [p.member for p in plans[1].images]
    counts = plans[0].counts()
    for wnid in m.wnids:  # 20 train + 4 val per class pooled: round(24 * 0.3) = 7 go to val
        assert counts["val"][wnid] == 7 and counts["train"][wnid] == 17
    # Golden: the documented algorithm gives this split on every machine and Python version.
    assert _members_hash(plans[0]) == GOLDEN_SPLIT


def test_noisy_labels_exact_and_seeded(custom):
    m, _, roots = custom
    plan = make_plan(m, open_source(roots["folders"]))
    data = noisy_csv(plan, m)
    rows = list(csv.reader(io.StringIO(data.decode())))
    assert rows[0] == HEADER == ["path", "noisy_labels_0", "noisy_labels_1", "noisy_labels_5",
                                 "noisy_labels_25", "noisy_labels_50", "is_valid"]
    body = rows[1:]
    assert [r[0] for r in body] == [p.member for p in plan.images]
    train = [r for r in body if r[6] == "False"]
    val = [r for r in body if r[6] == "True"]
    assert len(train) == 102 and len(val) == 42
    for r in body:
        assert r[1] == r[0].split("/")[1]  # noisy_labels_0 is the true label
    for r in val:
        assert set(r[1:6]) == {r[1]}  # val never flipped
    for col, pct in zip(range(2, 6), (1, 5, 25, 50)):
        flipped = [r for r in train if r[col] != r[1]]
        assert len(flipped) == flip_count(len(train), pct)
        assert all(r[col] in m.wnids for r in flipped)
    assert hashlib.sha256(data).hexdigest() == GOLDEN_NOISY


def test_manifest_from_new_manifest_builds_with_noisy_csv(custom, tmp_path):
    m, path, roots = custom
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


def test_verify_fails_a_generated_noisy_csv_with_a_row_too_many(custom, tmp_path):
    """A name with a line break, written unquoted by an old version, gave an extra row that verify
    passed (issue 19 item 4): the CSV must hold one row per labelled image, no more."""
    m, path, roots = custom
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


def test_imagewang_like_has_flat_unsup_of_imagewoof_classes(tmp_path):
    m = manifests.load("imagewang-like")
    assert "not available" in m.description and "NOT the published" in m.description
    woof = set(manifests.load("imagewoof2").wnids)
    generate(SampleSpec(out=tmp_path, layout="folders", per_class=20), m, jobs=1)
    plan = make_plan(m, open_source(tmp_path))
    unsup = [p for p in plan.images if p.split == "unsup"]
    assert unsup and all(p.member.count("/") == 1 and p.wnid in woof for p in unsup)
    counts = plan.counts()
    for w in woof:  # 17 train after the 30 % val split, 90 % of them (15) unlabelled
        assert counts["unsup"][w] == 15 and counts["train"][w] == 2
    rows = noisy_csv(plan, m).decode().splitlines()
    assert not any(r.startswith("unsup/") for r in rows)


def test_noisy_csv_made_in_pieces_is_the_same_file(custom, monkeypatch):
    """The build writes the CSV piece by piece (NoisyCsv.chunks), announcing its size first."""
    m, _, roots = custom
    plan = make_plan(m, open_source(roots["folders"]))
    whole = noisy_csv(plan, m)
    monkeypatch.setattr(NoisyCsv, "CHUNK", 100)
    made = NoisyCsv(plan, m)
    pieces = list(made.chunks())
    assert len(pieces) > 20 and b"".join(pieces) == whole and made.size == len(whole)
    assert list(made.chunks()) == pieces  # made again for each archive: the same


GOLDEN_SPLIT = "6373e4d5341be1359054721b0bc3f1891c50dfb54cf84bc3c131fcd7ba9d632d"
GOLDEN_NOISY = "d9471c3625104bd4b426ac6f6315c4cd9a8cf834ceaf4ad67052c13c0ec3ade1"
