"""The original ILSVRC-2012 tars read in place (sources/ilsvrc_tars.py)."""

from __future__ import annotations

import os
import tarfile

from imagenette_build import classes
from imagenette_build import manifest as manifests
from imagenette_build.progress import Progress
from imagenette_build.samplegen import synthetic_jpeg
from imagenette_build.sources import ilsvrc_tars, tarscan

from .test_tarscan import _tar_bytes

IMAGENETTE = manifests.load("imagenette2").wnids


def _gnu_header(name, size):
    info = tarfile.TarInfo(name)
    info.size = size
    return info.tobuf(tarfile.GNU_FORMAT)


def test_locating_10_classes_among_1000_reads_only_headers(tmp_path, monkeypatch):
    """A 1000-class train tar, the 10 wanted classes last, the other 990 sparse (never written, 36 GB
    on paper, one of them 20 GiB: a base-256 size). Reading their data would take minutes; the
    scan must read exactly one 512-byte header per class tar and per image, and nothing else."""
    decoys = [c.wnid for c in classes.all_classes() if c.wnid not in IMAGENETTE]
    images = {w: [f"{w}_{k}.JPEG" for k in range(3)] for w in IMAGENETTE}
    path = tmp_path / ilsvrc_tars.TRAIN_TAR
    with open(path, "wb") as f:
        for i, wnid in enumerate(decoys):
            size = (20 << 30) if i == 500 else (16 << 20)
            f.write(_gnu_header(f"{wnid}.tar", size))
            f.seek(size, os.SEEK_CUR)  # a hole: the data is never written
        for wnid in IMAGENETTE:
            inner = _tar_bytes(tarfile.GNU_FORMAT, [(n, synthetic_jpeg(n)[:2000]) for n in images[wnid]])
            f.write(_gnu_header(f"{wnid}.tar", len(inner)))
            f.write(inner)
        f.write(bytes(1024))
    assert path.stat().st_size > 36e9

    reads = []
    real = tarscan.read_at
    monkeypatch.setattr(tarscan, "read_at", lambda f, off, n: reads.append(n) or real(f, off, n))
    source = ilsvrc_tars.OriginalTarsSource(tmp_path, path, None)
    source.select(IMAGENETTE, Progress(quiet=True))
    found = {w: list(source.images(w)) for w in IMAGENETTE}

    inner_headers = sum(len(v) + 1 for v in images.values())  # each image + the end-of-archive block
    assert sum(reads) == 512 * (1000 + inner_headers)  # 1000 outer headers: ~0.5 MB of a 36 GB file
    for wnid, imgs in found.items():
        assert sorted(im.filename for im in imgs) == sorted(images[wnid])
        for im in imgs:
            assert im.ref.path == str(path) and im.ref.read() == synthetic_jpeg(im.filename)[:2000]
