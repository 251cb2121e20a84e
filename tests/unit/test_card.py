"""The dataset card (card.py): its YAML header holds every field the Hub and `datasets` read, and
`datasets.load_dataset(folder)` with the folder alone then gives the named splits (the unlabelled one
too), Image and ClassLabel features with the class names, and every row; the body says what the
dataset is, how it was made, where its images came from, its licence and how to cite it."""

from __future__ import annotations

import re

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from imagenette_build import card
from imagenette_build.card import card_markdown, header, hub_split, size_category

from .. import hubkit

datasets = pytest.importorskip("datasets")  # in the test extra: CI has it


def _front(text: str) -> dict:
    assert text.startswith("---\n")
    head, _, _ = text[4:].partition("\n---\n")
    return yaml.safe_load(head)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("hub") / "tiny-12-parquet"
    info = hubkit.write_parquet_folder(path)
    (path / "README.md").write_text(card_markdown(info), encoding="utf-8")
    return path, info


def test_every_header_field(folder):
    path, info = folder
    head = _front((path / "README.md").read_text(encoding="utf-8"))
    assert head == header(info)  # what was written is what was meant, through a YAML parser
    assert head["license"] == "other" and head["license_name"] == "imagenet"
    assert head["license_link"] == "https://www.image-net.org/download.php"
    assert head["task_categories"] == ["image-classification"]
    assert head["size_categories"] == ["n<1K"] and head["pretty_name"] == "tiny, 12 px"
    assert "imagenet" in head["tags"] and "parquet" in head["tags"]
    (config,) = head["configs"]
    assert config["config_name"] == "default"
    assert config["data_files"] == [{"split": {"val": "validation"}.get(s, s), "path": [f["path"] for f in files]}
                                    for s, files in info["files"].items()]
    features = head["dataset_info"]["features"]
    assert [f["name"] for f in features] == hubkit.COLUMNS
    names = {str(c["index"]): c["name"] for c in hubkit.CLASSES}
    assert features[0] == {"name": "image", "dtype": {"image": {"mode": "RGB"}}}
    assert features[1] == {"name": "label", "dtype": {"class_label": {"names": names}}}
    assert all(f["dtype"] == {"class_label": {"names": names}} for f in features if f["name"].startswith("noisy"))
    assert all(f["dtype"] == "string" for f in features if f["name"] in hubkit.PROVENANCE + ["wnid"])
    rows = hubkit.rows()
    splits = head["dataset_info"]["splits"]
    assert [(s["name"], s["num_examples"]) for s in splits] == [
        (hub_split(s), sum(r["split"] == s for r in rows)) for s, _, _ in hubkit.LAYOUT]
    on_disk = {s: sum((path / f["path"]).stat().st_size for f in files) for s, files in info["files"].items()}
    assert [s["num_bytes"] for s in splits] == [on_disk[s] for s, _, _ in hubkit.LAYOUT]
    assert head["dataset_info"]["download_size"] == head["dataset_info"]["dataset_size"] == sum(on_disk.values())


def test_load_dataset_with_the_folder_alone(folder, tmp_path):
    path, _ = folder
    ds = datasets.load_dataset(str(path), cache_dir=str(tmp_path / "hf"))
    assert list(ds) == ["train", "validation", "unsup"]
    features = ds["train"].features
    assert isinstance(features["image"], datasets.Image)
    assert features["image"].mode == "RGB"  # as the shards' metadata: a grayscale image decodes to RGB too
    assert isinstance(features["label"], datasets.ClassLabel)
    assert features["label"].names == [c["name"] for c in hubkit.CLASSES]
    assert features["noisy_labels_5"].names == features["label"].names
    for split, _, _ in hubkit.LAYOUT:
        want = [r for r in hubkit.rows() if r["split"] == split]
        got = ds[hub_split(split)].cast_column("image", datasets.Image(decode=False))
        assert [(r["image"]["bytes"], r["label"], r["member"], r["source_sha256"]) for r in got] == \
            [(r["image"]["bytes"], r["label"], r["member"], r["source_sha256"]) for r in want]
    row = ds["validation"][0]
    assert features["label"].int2str(row["label"]) == next(c["name"] for c in hubkit.CLASSES if c["wnid"] == row["wnid"])


def test_the_header_is_what_datasets_reads(folder, tmp_path):
    """A card whose counts disagree with the files fails to load: `datasets` reads the header's
    splits; and without the card the unlabelled split is not loaded at all."""
    path, info = folder
    other = tmp_path / "copy"
    other.mkdir()
    for f in path.glob("*.parquet"):
        (other / f.name).write_bytes(f.read_bytes())
    ds = datasets.load_dataset(str(other), cache_dir=str(tmp_path / "hf1"))
    assert list(ds) == ["train", "validation"]  # no card: unsup/ is dropped
    wrong = {**info, "counts": {**info["counts"], "val": {**info["counts"]["val"], "n01440764": 99}}}
    (other / "README.md").write_text(card_markdown(wrong), encoding="utf-8")
    with pytest.raises(Exception, match="(?i)split|examples"):
        datasets.load_dataset(str(other), cache_dir=str(tmp_path / "hf2"))


def test_the_body(folder):
    path, info = folder
    text = (path / "README.md").read_text(encoding="utf-8")
    body = text.split("\n---\n", 1)[1]
    assert body.lstrip().startswith("# tiny, 12 px\n")
    assert "| 1 | n02102040 | English springer | 2 | 1 | 1 | 4 |" in body  # the class table
    assert "| val | 2 (50.0 %) | 2 (50.0 %) | 4 |" in body  # the leakage table
    assert "2 of the 4 images of `val` are images it has already seen" in body
    assert "Not looked for in this build." in body
    assert info["command"] in body and "fastai-2018" in body and "libjpeg-turbo 3.2.0" in body
    assert "non-commercial research and educational" in body and "Apache License 2.0" in body
    assert all(f"| `{c}` |" in body for c in hubkit.COLUMNS)
    bibtex = body.split("```bibtex\n", 1)[1].split("```", 1)[0]
    entries = re.findall(r"^@(\w+)\{(\w+),", bibtex, re.M)
    assert entries == [("misc", "imagenette"), ("article", "ILSVRC15"), ("inproceedings", "deng2009imagenet")]
    assert bibtex.count("{") == bibtex.count("}")
    assert "preview" not in body and "Version" not in body  # nothing not given, no date


def test_preview_duplicates_date_and_version_and_determinism(folder):
    _, info = folder
    dups = {"images": 12, "near_threshold": 6,
            "exact": {"groups": 1, "members": 2, "groups_across_splits": 1, "members_across_splits": 2},
            "near": {"groups": 0, "members": 0, "groups_across_splits": 0, "members_across_splits": 0},
            "groups": [{"kind": "exact", "splits": ["train", "val"], "size": 2, "same_bytes": True,
                        "members": ["train/a/x.JPEG", "val/a/y.JPEG"]}], "groups_not_listed": 0}
    more = {**info, "preview": "preview.png", "duplicates": dups, "date": "2026-02-01", "version": "1.0.0"}
    text = card_markdown(more)
    assert text == card_markdown(dict(more)) and card_markdown(info) == card_markdown(dict(info))
    assert "![A few images of each class](preview.png)" in text
    assert "| exact | 1 | 2 | 1 | 2 |" in text and "| near | 0 | 0 | 0 | 0 |" in text
    assert "- exact: `train/a/x.JPEG`, `val/a/y.JPEG`" in text
    assert "Version: 1.0.0. Date: 2026-02-01." in text
    assert "2026" not in card_markdown(info)


def test_a_card_for_an_archive_and_for_webdataset(folder):
    _, info = folder
    tgz = {**info, "format": "tgz", "files": {"train": [{"path": "tiny-12.tgz", "bytes": 1, "sha256": "0" * 64}]}}
    head = _front(card_markdown(tgz))
    assert "configs" not in head and "dataset_info" not in head and head["license"] == "other"
    assert "tar xzf" in card_markdown(tgz) and "## Columns" not in card_markdown(tgz)
    wds = {**info, "format": "webdataset",
           "files": {s: [{"path": f["path"].replace(".parquet", ".tar"), "bytes": 1, "sha256": "0" * 64}
                         for f in files] for s, files in info["files"].items()}}
    head = _front(card_markdown(wds))
    assert head["configs"][0]["data_files"][1] == {"split": "validation", "path": ["val-00000-of-00001.tar"]}
    assert "dataset_info" not in head and "`<key>.json`" in card_markdown(wds)
    assert "croissant.json" not in card_markdown(wds) and "croissant.json" in card_markdown(info)  # parquet only


def test_an_unknown_column_is_refused(folder):
    _, info = folder
    with pytest.raises(ValueError, match="column 'extra'"):
        card_markdown({**info, "columns": info["columns"] + ["extra"]})


@pytest.mark.parametrize("n, bucket", [(0, "n<1K"), (999, "n<1K"), (1000, "1K<n<10K"), (13_394, "10K<n<100K"),
                                       (1_281_167, "1M<n<10M"), (10**10, "n>1B")])
def test_size_categories(n, bucket):
    assert size_category(n) == bucket


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
_values = st.recursive(st.one_of(_text, st.integers(-2**63, 2**63), st.booleans()),
                       lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_text, inner, max_size=4)),
                       max_leaves=12)


@given(st.dictionaries(_text, _values, max_size=5))
def test_the_yaml_writer_round_trips_through_a_yaml_parser(doc):
    assert (yaml.safe_load(card.yaml(doc)) or {}) == doc
