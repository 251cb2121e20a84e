"""A built dataset describes itself (docs/datasets.md): the parquet folder is a Hugging Face dataset
repository that `datasets.load_dataset(folder)` reads with the folder alone, its `croissant.json`
validates and reads in `mlcroissant`, every output carries the card and the contact sheet of its
own images, byte-identical whatever --jobs, and `verify` holds each document to its sums lines.
The leakage table of imagenette2 and imagewoof2 is what their shipped lists' file names say,
before any image is read; `new-manifest --split imagenet` makes a subset whose val has none."""

from __future__ import annotations

import csv
import shutil
import json
import logging
import warnings
from collections import Counter
from pathlib import Path

import pytest
import yaml
from PIL import Image

from imagenette_build import manifest as manifests
from imagenette_build.samplegen import SampleSpec, generate
from imagenette_build.shipped import shipped_dir

from .. import faultkit as fk
from ..conftest import run_cli

STEM = "imagenette2-sample-64"
PARQUET, WDS = f"{STEM}-parquet", f"{STEM}-wds"
DOCUMENTS = [f"{PARQUET}/README.md", f"{PARQUET}/croissant.json", f"{PARQUET}/preview.png", f"{WDS}/README.md",
             f"{WDS}/preview.png", f"{STEM}.README.md", f"{STEM}.preview.png"]


def _build(sample, out: Path, jobs: int) -> None:
    root, manifest_path = sample
    r = run_cli("--imagenet", root, "--manifest", manifest_path, "--size", "64", "--out", out, "-q", "-j", jobs,
                "--format", "tgz", "--format", "parquet", "--format", "webdataset", "--no-cache")
    assert r.returncode == 0, r.stderr


@pytest.fixture(scope="module")
def built(sample, tmp_path_factory):
    """The sample at 64 px in every format, built with --jobs 1 and with --jobs 2."""
    outs = {}
    for jobs in (1, 2):
        outs[jobs] = tmp_path_factory.mktemp(f"dist-j{jobs}")
        _build(sample, outs[jobs], jobs)
    return outs


def _report(out: Path) -> dict:
    return json.loads((out / f"{STEM}.json").read_text())


def test_every_document_is_written_listed_and_the_same_whatever_the_jobs(built):
    out = built[1]
    sums = fk.parse_sums(out / "SHA256SUMS")
    report = _report(out)
    listed = {f["path"]: f["sha256"] for o in report["outputs"].values() for f in o["files"]}
    for name in DOCUMENTS:
        assert name in sums and listed[name] == sums[name], name
        assert (built[1] / name).read_bytes() == (built[2] / name).read_bytes(), name
    assert not [p for p in out.rglob("*") if ".partial-" in p.name]
    # the card of each output; the tgz's beside it, the sheet referenced from each
    for card, sheet in ((f"{PARQUET}/README.md", "preview.png"), (f"{WDS}/README.md", "preview.png"),
                        (f"{STEM}.README.md", f"{STEM}.preview.png")):
        text = (out / card).read_text(encoding="utf-8")
        assert f"]({sheet})" in text, card
        assert "| split | from ILSVRC-2012 train | from ILSVRC-2012 val | total |" in text
        assert "--imagenet /path/to/imagenet" in text and str(out) not in text  # no path of this machine
    sheet = Image.open(out / f"{PARQUET}/preview.png")
    assert sheet.format == "PNG" and sheet.mode == "RGB" and sheet.height > 10 * 96


def test_the_closing_lines_count_shards_not_documents(sample, tmp_path):
    root, manifest_path = sample
    r = run_cli("--imagenet", root, "--manifest", manifest_path, "--size", "64", "--out", tmp_path, "-j", "1",
                "--format", "parquet", "--no-cache")
    assert r.returncode == 0, r.stderr
    shards = len(list((tmp_path / PARQUET).glob("*.parquet")))
    assert f"{PARQUET}/ ({shards} shards)" in r.stdout + r.stderr


def test_load_dataset_with_the_folder_alone(built, tmp_path):
    datasets = pytest.importorskip("datasets")
    out = built[2]
    report = _report(out)
    ds = datasets.load_dataset(str(out / PARQUET), cache_dir=str(tmp_path / "hf"))
    assert list(ds) == ["train", "validation"]
    names = [c["name"] for c in report["classes"]]
    features = ds["train"].features
    assert isinstance(features["image"], datasets.Image) and features["image"].mode == "RGB"
    assert isinstance(features["label"], datasets.ClassLabel) and features["label"].names == names
    index = {c["wnid"]: c["index"] for c in report["classes"]}
    for split, hub in (("train", "train"), ("val", "validation")):
        rows = ds[hub].cast_column("image", datasets.Image(decode=False))
        got = Counter(r["wnid"] for r in rows)
        assert got == Counter({w: n for w, n in report["counts"][split].items() if n})
        assert all(r["label"] == index[r["wnid"]] for r in rows)
        assert all(r["image"]["path"].startswith(f"{split}/{r['wnid']}/") for r in rows)
    # the WebDataset folder alone too: its card names the splits (the fields are the shards')
    wds = datasets.load_dataset(str(out / WDS), cache_dir=str(tmp_path / "hf-wds"))
    assert list(wds) == ["train", "validation"]
    assert [wds[s].num_rows for s in wds] == [ds["train"].num_rows, ds["validation"].num_rows]
    # the card's header is what datasets read: its splits and features
    head = yaml.safe_load((out / PARQUET / "README.md").read_text(encoding="utf-8").split("---\n")[1])
    assert [s["num_examples"] for s in head["dataset_info"]["splits"]] == [ds["train"].num_rows,
                                                                          ds["validation"].num_rows]


def test_mlcroissant_validates_it_and_reads_every_record(built, caplog):
    mlc = pytest.importorskip("mlcroissant")
    out = built[2]
    report = _report(out)
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        ds = mlc.Dataset(jsonld=str(out / PARQUET / "croissant.json"))
        records = list(ds.records(record_set="images"))
    issues = ds.metadata.ctx.issues
    assert sorted(issues.errors) == [] and sorted(issues.warnings) == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert [str(w.message) for w in caught if not issubclass(w.category, (DeprecationWarning, FutureWarning))] == []
    names = {c["index"]: c["name"] for c in report["classes"]}
    wnids = {c["index"]: c["wnid"] for c in report["classes"]}
    got = Counter()
    for r in records:
        label, split = r["images/label"], r["images/split"].decode()
        assert r["images/label_name"].decode() == names[label]
        assert r["images/wnid"].decode() == wnids[label]
        assert isinstance(r["images/image"], Image.Image)
        got[split, r["images/wnid"].decode()] += 1
    assert got == Counter({(s, w): n for s, per in report["counts"].items() for w, n in per.items() if n})
    doc = json.loads((out / PARQUET / "croissant.json").read_text())
    assert doc["datePublished"] == "2021-02-06"  # the build's date: SOURCE_DATE_EPOCH's default


@pytest.mark.parametrize("target", [PARQUET, WDS, f"{STEM}.tgz"])
def test_verify_passes_and_fails_identity_when_a_document_is_edited(built, tmp_path, target):
    out = tmp_path / "dist"
    shutil.copytree(built[1], out)
    r = run_cli("verify", out / target)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no sums line or report lists" not in r.stdout
    card = out / (f"{target}/README.md" if not target.endswith(".tgz") else f"{STEM}.README.md")
    card.write_text(card.read_text(encoding="utf-8").replace("tench", "trout"), encoding="utf-8")
    r = run_cli("verify", out / target)
    assert r.returncode == 1, r.stdout + r.stderr
    identity = next(line for line in r.stdout.splitlines() if "identity" in line)
    assert identity.startswith("FAIL"), r.stdout
    assert "README.md" in r.stdout


@pytest.mark.parametrize("target", [PARQUET, WDS])
def test_the_folder_alone_verifies_its_documents_known_by_name(built, tmp_path, target):
    """A folder copied without its report and sums (as the Hub serves it): its documents are not
    taken for shards or unknown files; they are named as not checked."""
    folder = tmp_path / target
    shutil.copytree(built[1] / target, folder)
    r = run_cli("verify", folder)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "the folder's documents; no sums line or report lists them: not checked" in r.stdout
    assert "README.md" in r.stdout and "not named <split>" not in r.stdout
    (folder / "notes.txt").write_text("mine")  # anything else is still an unknown file
    r = run_cli("verify", folder)
    assert r.returncode == 1 and "notes.txt" in r.stdout, r.stdout


# ---------------------------------------------------------------------------------------- leakage


def _by_hand(csv_name: str) -> dict:
    """The leakage table from the shipped list's file names alone."""
    counts = Counter()
    with open(shipped_dir() / csv_name, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            split, _, name = row["path"].split("/")
            counts[split, "imagenet_val" if name.startswith("ILSVRC2012_val_") else "imagenet_train"] += 1
    return {s: {"imagenet_train": counts[s, "imagenet_train"], "imagenet_val": counts[s, "imagenet_val"],
                "unknown": 0} for s in ("train", "val")}


@pytest.mark.parametrize("name, csv_name", [("imagenette2", "noisy_imagenette.csv"),
                                            ("imagewoof2", "noisy_imagewoof.csv")])
def test_dry_run_gives_the_leakage_the_shipped_lists_imply(tmp_path, name, csv_name):
    """Every listed image as an empty file (a dry run reads none): the plan's table, printed and in
    --json, is the one counted here from the list."""
    with open(shipped_dir() / csv_name, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            _, wnid, filename = row["path"].split("/")
            where = tmp_path / ("val" if filename.startswith("ILSVRC2012_val_") else "train") / wnid
            where.mkdir(parents=True, exist_ok=True)
            (where / filename).touch()
    want = _by_hand(csv_name)
    r = run_cli("--imagenet", tmp_path, "--manifest", name, "--dry-run", "--json", "-q")
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    assert plan["complete"] and plan["leakage"] == want
    assert want["val"]["imagenet_train"] > 3_700  # most of val is ImageNet train: what the card warns of
    r = run_cli("--imagenet", tmp_path, "--manifest", name, "--dry-run", "-q")
    assert r.returncode == 0, r.stderr
    val = want["val"]
    assert f"| val | {val['imagenet_train']:,} (" in r.stdout and f"| {sum(val.values()):,} |" in r.stdout


def test_new_manifest_split_imagenet_keeps_val_free_of_imagenet_train(tmp_path):
    """A subset made with `--split imagenet` and built: its val holds ILSVRC-2012 val images only
    (the report, the card and the member names agree); the default split (random) mixes them."""
    counts = {}
    for split in ("imagenet", "random"):
        toml = tmp_path / f"{split}.toml"
        r = run_cli("new-manifest", f"four-{split}", "--random", "4", "--seed", "3", "--split", split, "--out", toml)
        assert r.returncode == 0, r.stderr
        root = tmp_path / f"imagenet-{split}"
        generate(SampleSpec(out=root, layout="folders", per_class=12), manifests.load_path(toml), jobs=1)
        out = tmp_path / f"dist-{split}"
        r = run_cli("--imagenet", root, "--manifest", toml, "--size", "32", "--out", out, "-q", "-j", "1",
                    "--format", "tgz", "--format", "parquet", "--no-cache")
        assert r.returncode == 0, r.stderr
        report = json.loads((out / f"four-{split}-32.json").read_text())
        members = (out / f"four-{split}-32.members.sha256").read_text().splitlines()
        val = [m.split("  ", 1)[1] for m in members if m.split("  ", 1)[1].startswith("val/")]
        counts[split] = report["leakage"]["val"], val
        card = (out / f"four-{split}-32-parquet" / "README.md").read_text(encoding="utf-8")
        row = report["leakage"]["val"]
        assert f"| val | {row['imagenet_train']:,} (" in card
    leak, val = counts["imagenet"]
    assert val and all(m.rsplit("/", 1)[1].startswith("ILSVRC2012_val_") for m in val)
    assert leak == {"imagenet_train": 0, "imagenet_val": len(val), "unknown": 0}
    assert counts["random"][0]["imagenet_train"] > 0  # the default split does leak
