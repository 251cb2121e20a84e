"""The synthetic ImageNet (samplegen.py)."""

from __future__ import annotations

import io

from PIL import Image

from imagenette_build import manifest as manifests
from imagenette_build.samplegen import SampleSpec, generate, synthetic_jpeg


def test_cycled_photos_are_distinct_files_with_the_same_pixels(tmp_path):
    """`sample-imagenet --photos` cycles a few photos over thousands of names; each copy carries its
    name in a JPEG comment, so a content-keyed cache sees distinct files (as with ImageNet) while
    decoding gives the photo's pixels exactly."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a", "b"):
        (photos / f"{name}.JPEG").write_bytes(synthetic_jpeg(f"photo-{name}.JPEG"))
    root = tmp_path / "imagenet"
    generate(SampleSpec(out=root, per_class=2, photos=photos), manifests.load("imagenette2"), jobs=1)
    files = sorted((root / "train").rglob("*.JPEG"))
    assert len(files) >= 20  # 2 per class, and decoys
    datas = [f.read_bytes() for f in files]
    assert len(set(datas)) == len(files)  # every copy distinct
    originals = {p.name: Image.open(p) for p in photos.iterdir()}
    pixels = {name: im.tobytes() for name, im in originals.items()}
    for f, data in zip(files, datas):
        assert f.name.encode() in data[:200]
        im = Image.open(io.BytesIO(data))
        assert im.tobytes() in pixels.values(), f
