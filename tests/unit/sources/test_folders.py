"""Extracted ImageNet folders (sources/folders.py): val per class, or flat and labelled by the devkit
or by Kaggle's CSV; only the asked-for classes are listed; a class with no folder has no images."""

from __future__ import annotations

import pytest

from imagenette_build.errors import UserError
from imagenette_build.sources import open_source
from imagenette_build.sources.folders import FolderSource

from ... import faultkit as fk

TENCH, KIT_FOX, ENGLISH_SETTER = "n01440764", "n02119789", "n02100735"  # devkit IDs 449, 1, 2


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")  # never read here: listing only
    return path


def _images(source, wnid):
    return sorted((im.split, im.wnid, im.filename, im.ref.path) for im in source.images(wnid))


def test_val_per_class(tmp_path):
    train = _touch(tmp_path / "train" / TENCH / f"{TENCH}_1.JPEG")
    val = _touch(tmp_path / "val" / TENCH / "ILSVRC2012_val_00000293.JPEG")
    _touch(tmp_path / "train" / TENCH / ".hidden.JPEG")
    _touch(tmp_path / "train" / TENCH / "notes.txt")
    _touch(tmp_path / "train" / KIT_FOX / f"{KIT_FOX}_1.JPEG")  # another class: not listed for tench
    source = open_source(tmp_path)
    assert isinstance(source, FolderSource) and source.val_style == "per-class"
    assert _images(source, TENCH) == [("train", TENCH, train.name, str(train)), ("val", TENCH, val.name, str(val))]
    assert source.describe() == f"extracted folders at {tmp_path} (val per class)"
    assert source.looked_in(TENCH) == f"{tmp_path / 'train' / TENCH}/ and {tmp_path / 'val' / TENCH}/"


@pytest.mark.parametrize("labels", ["devkit", "kaggle"])
def test_flat_val_is_labelled_by_the_ground_truth(tmp_path, labels):
    _touch(tmp_path / "train" / KIT_FOX / f"{KIT_FOX}_7.JPEG")
    for n in (1, 2, 1001):  # devkit lines 1 and 1001: kit fox; line 2: English setter
        _touch(tmp_path / "val" / f"ILSVRC2012_val_{n:08d}.JPEG")
    if labels == "devkit":
        label_file = tmp_path / "ILSVRC2012_devkit_t12" / "data" / "ILSVRC2012_validation_ground_truth.txt"
        label_file.parent.mkdir(parents=True)
        label_file.write_text(fk.devkit_ground_truth())
    else:
        label_file = tmp_path / "LOC_val_solution.csv"
        label_file.write_text("ImageId,PredictionString\n"
                              + "".join(f"ILSVRC2012_val_{n:08d},{w} 10 20 30 40\n"
                                        for n, w in ((1, KIT_FOX), (2, ENGLISH_SETTER), (1001, KIT_FOX), (5, TENCH))))
    source = open_source(tmp_path)
    assert source.val_style == "flat" and source.labels_file == label_file
    assert [(s, f) for s, _, f, _ in _images(source, KIT_FOX)] == [
        ("train", f"{KIT_FOX}_7.JPEG"), ("val", "ILSVRC2012_val_00000001.JPEG"),
        ("val", "ILSVRC2012_val_00001001.JPEG")]
    assert [f for _, _, f, _ in _images(source, ENGLISH_SETTER)] == ["ILSVRC2012_val_00000002.JPEG"]
    assert _images(source, TENCH) == []  # labelled, but its file is not there
    assert source.describe() == f"extracted folders at {tmp_path} (flat val labelled by {label_file})"


def test_a_missing_class_has_no_images_and_a_file_in_its_place_is_an_error(tmp_path):
    _touch(tmp_path / "train" / KIT_FOX / f"{KIT_FOX}_1.JPEG")
    source = open_source(tmp_path)
    assert source.val_style is None and _images(source, TENCH) == []  # the planner reports it missing
    assert source.looked_in(TENCH) == f"{tmp_path / 'train' / TENCH}/"
    _touch(tmp_path / "train" / TENCH)
    with pytest.raises(UserError, match=f"^{tmp_path / 'train' / TENCH}: expected a class folder, found a file$"):
        list(source.images(TENCH))


def test_flat_val_without_labels_and_a_half_sorted_val_are_refused(tmp_path):
    _touch(tmp_path / "val" / "ILSVRC2012_val_00000001.JPEG")
    with pytest.raises(UserError, match=f"^{tmp_path / 'val'}: flat validation images need labels; looked for"):
        open_source(tmp_path)
    _touch(tmp_path / "val" / TENCH / "ILSVRC2012_val_00000293.JPEG")
    with pytest.raises(UserError, match="holds both class folders and flat ILSVRC2012_val_\\* files"):
        open_source(tmp_path)


def test_the_kaggle_tree_with_its_csv_at_the_top(tmp_path):
    top = tmp_path / "ILSVRC" / "Data" / "CLS-LOC"
    val = _touch(top / "val" / "ILSVRC2012_val_00000001.JPEG")
    (tmp_path / "LOC_val_solution.csv").write_text(
        f"ImageId,PredictionString\nILSVRC2012_val_00000001,{KIT_FOX} 1 2 3 4\n")
    source = open_source(tmp_path)
    assert source.layout == "Kaggle ILSVRC/Data/CLS-LOC tree" and source.top == top
    assert _images(source, KIT_FOX) == [("val", KIT_FOX, val.name, str(val))]
