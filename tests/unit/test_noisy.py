"""Noisy labels for new datasets (noisy.py): exactly round(n * p / 100) train labels flipped at p %,
val never, seeded by sha256 only; the CSV made in pieces is the same file."""

from __future__ import annotations

import csv
import hashlib
import io

from imagenette_build import manifest as manifests
from imagenette_build.noisy import HEADER, NoisyCsv, flip_count, noisy_csv
from imagenette_build.plan import Plan, PlanImages, PlannedImage, make_plan
from imagenette_build.sources import SourceRef, open_source

from ..conftest import GOLDEN_NOISY


def test_noisy_labels_exact_and_seeded(new_dataset):
    m, _, roots = new_dataset
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


def test_noisy_csv_made_in_pieces_is_the_same_file(new_dataset, monkeypatch):
    """The build writes the CSV piece by piece (NoisyCsv.chunks), announcing its size first."""
    m, _, roots = new_dataset
    plan = make_plan(m, open_source(roots["folders"]))
    whole = noisy_csv(plan, m)
    monkeypatch.setattr(NoisyCsv, "CHUNK", 100)
    made = NoisyCsv(plan, m)
    pieces = list(made.chunks())
    assert len(pieces) > 20 and b"".join(pieces) == whole and made.size == len(whole)
    assert list(made.chunks()) == pieces  # made again for each archive: the same


# ------------------------------------------------------------------------------ on a plan made here


def _two_class_plan(tmp_path, seed: int = 0, train: int = 25, val: int = 3):
    """A plan of two classes, `train` train and `val` val images each (no files: the CSV only names
    them), for a manifest with generated noisy labels seeded `seed`."""
    toml = tmp_path / f"two-{seed}.toml"
    toml.write_text(f'name = "two"\nstem = "two"\n[split]\npolicy = "imagenet"\n[noisy_labels]\nseed = {seed}\n'
                    '[[classes]]\nwnid = "n01440764"\n[[classes]]\nwnid = "n02102040"\n')
    m = manifests.load_path(toml)
    images = [PlannedImage(f"{split}/{w}/{w}_{i}.JPEG", split, w, SourceRef(f"/in/{w}_{i}.JPEG"))
              for w in m.wnids for split, n in (("train", train), ("val", val)) for i in range(n)]
    return Plan(m, "made here", PlanImages.from_images(images)), m


def test_flip_count_rounds_half_up():
    """round(n * p / 100), half up: Python's round() would give 0, 2, 12 (to even) in the half cases."""
    assert [flip_count(50, p) for p in (1, 5, 25, 50)] == [1, 3, 13, 25]
    assert [flip_count(49, 1), flip_count(0, 50), flip_count(1, 50), flip_count(3, 50)] == [0, 0, 1, 2]


def test_exactly_the_flip_count_of_train_labels_change_to_the_other_class_and_val_never(tmp_path):
    plan, m = _two_class_plan(tmp_path)
    rows = list(csv.reader(io.StringIO(noisy_csv(plan, m).decode())))[1:]
    assert [r[0] for r in rows] == list(plan.images.members())  # one row per image, in member order
    train, val = [r for r in rows if r[6] == "False"], [r for r in rows if r[6] == "True"]
    assert len(train) == 50 and len(val) == 6
    assert all(set(r[1:6]) == {r[0].split("/")[1]} for r in val)
    other = {"n01440764": "n02102040", "n02102040": "n01440764"}
    for col, p in zip(range(2, 6), (1, 5, 25, 50)):
        flipped = [r for r in train if r[col] != r[1]]
        assert len(flipped) == flip_count(50, p), p
        assert all(r[col] == other[r[1]] for r in flipped)


def test_flips_depend_on_the_seed_and_nothing_else(tmp_path):
    plan, m = _two_class_plan(tmp_path, seed=7)
    (tmp_path / "again").mkdir()
    again, m_again = _two_class_plan(tmp_path / "again", seed=7)  # made again, from a file of its own
    assert noisy_csv(plan, m) == noisy_csv(again, m_again)
    other_seed, m_other = _two_class_plan(tmp_path, seed=8)
    assert noisy_csv(other_seed, m_other) != noisy_csv(plan, m)
    assert NoisyCsv(plan, m).size == len(noisy_csv(plan, m))
