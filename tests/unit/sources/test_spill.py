"""The spill file of the one-pass layouts (sources/spill.py)."""

from __future__ import annotations


def test_spill_gives_back_each_class_s_images_with_their_bytes(tmp_path, use_settings):
    """The one-pass layouts keep what they spilled per class compactly (names in one bytearray,
    ranges in one array), not as objects: the same images, split and bytes come back."""
    from imagenette_build.sources.spill import Spill

    use_settings(tmpdir=tmp_path)
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
