"""Hugging Face's tar.gz shards (sources/hf_shards.py): one pass over every shard, the planned
classes copied to a spill file that goes away, names mapped back to ImageNet's."""

from __future__ import annotations

import pytest

from imagenette_build import manifest as manifests
from imagenette_build.errors import DataError
from imagenette_build.progress import Progress
from imagenette_build.samplegen import synthetic_jpeg
from imagenette_build.sources import open_source
from imagenette_build.sources.hf_shards import imagenet_name

IMAGENETTE = manifests.load("imagenette2").wnids


def test_hugging_face_names_map_back_to_imagenet_names():
    assert imagenet_name("n01440764_10026_n01440764.JPEG", "s") == ("n01440764_10026.JPEG", "n01440764")
    assert imagenet_name("train/n01440764_10026_n01440764.JPEG", "s") == ("n01440764_10026.JPEG", "n01440764")
    assert imagenet_name("ILSVRC2012_val_00000001_n01751748.JPEG", "s") == \
        ("ILSVRC2012_val_00000001.JPEG", "n01751748")
    with pytest.raises(DataError, match="does not end in _<wnid>.JPEG"):
        imagenet_name("ILSVRC2012_test_00000001.JPEG", "s")
    with pytest.raises(DataError, match="names two classes"):
        imagenet_name("n01440764_10026_n02102040.JPEG", "s")


def test_hf_shards_spill_only_the_planned_classes(archived_layouts, tmp_path, use_settings, monkeypatch):
    root, _ = archived_layouts["hf-shards"]
    use_settings(tmpdir=tmp_path)
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
