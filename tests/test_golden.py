"""Golden bytes: the sample ImageNet (4 images a class, generated the same on every Pillow) built
with the defaults gives exactly these bytes, on stock Pillow and on pillow-simd. A change that
moves any byte of an output fails here: a rewrite of the code must not; a deliberate change of
the output updates these values, saying why in its commit.

Compressor-independent values only: the sha256 of the uncompressed tar (the .tgz's deflate is
ISA-L's, which may change with its version), of the member list, and of the WebDataset shards
(plain tar, written here)."""

from __future__ import annotations

import hashlib
import json

from . import faultkit as fk
from .conftest import run_cli

GOLDEN = {
    "imagenette2-sample-64": ("be6d0a376b25867a5166803b73597b1dea513c5846f45e7665c2b5c3c5f9d057",
                              "2021291832b4afac7c72270c431cd0f8260d11632ebf17d590956e586a1ab28a"),
    "imagenette2-sample": ("f9304c6a235be1ea4aa252965299ef39e77fee03e565765ac5052aae2d05774f",
                           "51339e0d957efbd2d93285321880dd4842301bdb160536b6526cc90bdfb1ef18"),
}
GOLDEN_SHARDS = {
    "imagenette2-sample-64-wds/train-00000-of-00001.tar": "027ec55a97bcad94706eaf623f3013c23853c2b3849994dcc0d9af3d68b32351",
    "imagenette2-sample-64-wds/val-00000-of-00001.tar": "d1d90a8f02fc0289440f26e723c44164fa4c07b6d815aca14f10287ead13ced4",
    "imagenette2-sample-wds/train-00000-of-00001.tar": "7a225bb95c0b3ff006064067186e0af62d41a8b967842270f285dea730591b2e",
    "imagenette2-sample-wds/val-00000-of-00001.tar": "4934216058d8f0ad4bc88c77c760e6c1b53f1a11ac62b62964ceffd2df756cb8",
}


def test_the_sample_builds_to_the_golden_bytes(sample, tmp_path):
    root, manifest_path = sample
    r = run_cli("--imagenet", root, "--manifest", manifest_path, "--size", "64", "--size", "full", "--out", tmp_path,
                "-q", "--format", "tgz", "--format", "webdataset", "--no-cache", "-j", "2")
    assert r.returncode == 0, r.stderr
    for stem, (tar_sha256, members_sha256) in GOLDEN.items():
        report = json.loads((tmp_path / f"{stem}.json").read_text())
        assert report["tar_sha256"] == tar_sha256, stem
        assert hashlib.sha256((tmp_path / f"{stem}.members.sha256").read_bytes()).hexdigest() == members_sha256, stem
    sums = fk.parse_sums(tmp_path / "SHA256SUMS")
    assert {p: h for p, h in sums.items() if "-wds/" in p} == GOLDEN_SHARDS
