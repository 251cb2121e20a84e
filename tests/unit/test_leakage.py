"""The leakage table (leakage.py): per split, members from ILSVRC train and from ILSVRC val. For the
shipped imagenette2 and imagewoof2 lists it equals what the lists' file names say, computed here
independently; in every layout the origin read from a name is the split the reader found it in."""

from __future__ import annotations

import csv
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagenette_build import leakage
from imagenette_build import manifest as manifests
from imagenette_build.leakage import TRAIN, UNKNOWN, VAL, leakage_table, markdown, of_members, origin
from imagenette_build.plan import Plan, PlanImages, PlannedImage, make_plan
from imagenette_build.shipped import shipped_dir as manifests_dir
from imagenette_build.sources import SourceRef, open_source


def _by_hand(csv_path) -> dict:
    """The table of a shipped list, from its `path` column alone: ILSVRC val files start with
    'ILSVRC2012_val_', every other name is an ILSVRC train file."""
    counts = Counter()
    with open(csv_path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            split, _, name = row["path"].split("/")
            counts[split, "val" if name.startswith("ILSVRC2012_val_") else "train"] += 1
    return {s: {TRAIN: counts[s, "train"], VAL: counts[s, "val"], UNKNOWN: 0} for s in ("train", "val")}


def _plan_of_list(m) -> Plan:
    """A plan of every image a `files` manifest lists, as the planner makes it (no source read)."""
    images = [PlannedImage(item.member, item.split, item.wnid, SourceRef(f"/imagenet/{item.filename}"))
              for item in m.listed_images()]
    return Plan(m, "the shipped list", PlanImages.from_images(images))


@pytest.mark.parametrize("name, csv_name, total", [("imagenette2", "noisy_imagenette.csv", 13_394),
                                                   ("imagewoof2", "noisy_imagewoof.csv", 12_954)])
def test_the_shipped_lists_tables_are_what_their_names_say(name, csv_name, total):
    m = manifests.load(name)
    want = _by_hand(manifests_dir() / csv_name)
    table = leakage_table(_plan_of_list(m))
    assert table == want
    assert sum(sum(row.values()) for row in table.values()) == total
    assert table["val"][TRAIN] > 0 and table["train"][VAL] > 0  # both splits mix both origins
    with open(manifests_dir() / csv_name, newline="", encoding="utf-8") as f:
        assert of_members(row["path"] for row in csv.DictReader(f)) == want


@pytest.mark.parametrize("name", ["n01440764_10026.JPEG", "n02102040_1.jpeg", "n03888257_123456.png"])
def test_train_names(name):
    assert origin(name) == TRAIN


@pytest.mark.parametrize("name", ["ILSVRC2012_val_00000001.JPEG", "ILSVRC2012_val_00050000.jpg"])
def test_val_names(name):
    assert origin(name) == VAL


@pytest.mark.parametrize("name", ["ILSVRC2012_val_1.JPEG", "ILSVRC2012_test_00000001.JPEG", "n0144076_1.JPEG",
                                  "n01440764_.JPEG", "n01440764_1", "cat.jpg", "n01440764_1.JPEG.bak",
                                  "ILSVRC2012_val_00000001_n01751748.JPEG", ""])
def test_other_names_are_unknown_never_guessed(name):
    assert origin(name) == UNKNOWN


def test_the_names_agree_with_the_split_each_layout_found_them_in(sample_layouts, archived_layouts):
    """The table reads names, not the readers' splits: in every layout they say the same."""
    m = manifests.load("imagenette2")
    for layout, (root, _) in {**sample_layouts, **archived_layouts}.items():
        source = open_source(root)
        try:
            found = [(img.split, img.filename) for wnid in m.wnids for img in source.images(wnid)]
        finally:
            source.close()
        assert found, layout
        assert all(origin(name) == f"imagenet_{split}" for split, name in found), layout


def test_a_random_split_plan(new_dataset):
    m, _, roots = new_dataset
    plan = make_plan(m, open_source(roots["folders"]))
    table = leakage_table(plan)
    assert list(table) == ["train", "val"]
    for split in ("train", "val"):
        names = [member.rpartition("/")[2] for member in plan.images.members(split)]
        assert table[split] == {TRAIN: sum(not n.startswith("ILSVRC2012_val_") for n in names),
                                VAL: sum(n.startswith("ILSVRC2012_val_") for n in names), UNKNOWN: 0}


def test_rows_in_the_manifests_order_then_sorted_every_split_a_row():
    table = of_members(["val/n1/n01440764_1.JPEG", "zz/x.jpg", "aa/n01440764_2.JPEG"], splits=("train", "val"))
    assert list(table) == ["train", "val", "aa", "zz"]
    assert table["train"] == {TRAIN: 0, VAL: 0, UNKNOWN: 0}
    assert table["zz"][UNKNOWN] == 1 and table["aa"][TRAIN] == 1
    with pytest.raises(ValueError, match="unknown origin"):
        leakage.count([("train", "train")])


def test_markdown():
    table = {"train": {TRAIN: 9103, VAL: 366, UNKNOWN: 0}, "val": {TRAIN: 3791, VAL: 134, UNKNOWN: 0}}
    text = markdown(table)
    lines = text.splitlines()
    assert lines[0] == "| split | from ILSVRC-2012 train | from ILSVRC-2012 val | total |"
    assert lines[2] == "| train | 9,103 (96.1 %) | 366 (3.9 %) | 9,469 |"
    assert lines[3] == "| val | 3,791 (96.6 %) | 134 (3.4 %) | 3,925 |"
    assert lines[4] == "| **all** | 12,894 (96.3 %) | 500 (3.7 %) | 13,394 |"
    assert "unknown" not in text
    table["val"][UNKNOWN] = 1
    assert "origin unknown" in markdown(table).splitlines()[0]
    assert "| 0 (0 %) | 0 (0 %) | 0 |" in markdown({"unsup": dict.fromkeys(leakage.ORIGINS, 0)})


_names = st.one_of(st.from_regex(r"n[0-9]{8}_[0-9]{1,6}\.JPEG", fullmatch=True),
                   st.from_regex(r"ILSVRC2012_val_[0-9]{8}\.JPEG", fullmatch=True),
                   st.text(alphabet="abnILSVRC_0123456789.", max_size=20).filter(lambda s: "/" not in s))


@given(st.lists(st.tuples(st.sampled_from(["train", "val", "unsup"]), _names), max_size=50))
def test_every_member_counted_once_in_its_split_and_origin(items):
    table = of_members([f"{split}/n01440764/{name}" for split, name in items], splits=("train", "val"))
    assert sum(sum(row.values()) for row in table.values()) == len(items)
    for split in {s for s, _ in items}:
        assert table[split] == {o: sum(s == split and origin(n) == o for s, n in items) for o in leakage.ORIGINS}
