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
    "imagenette2-sample-64-wds/train-00000-of-00008.tar": "82ee3d557be0ccdc4ff2371850aba824b0437fdc9edae70ec6152d2f36798dbf",
    "imagenette2-sample-64-wds/train-00001-of-00008.tar": "6036a9256b32d97142a890429fa2cc817e4094388c68baa5fa1e5e9cdbfea480",
    "imagenette2-sample-64-wds/train-00002-of-00008.tar": "4b34935101927ec38320e26d2c39bd649800f37d3f11eedeed48f2c361353137",
    "imagenette2-sample-64-wds/train-00003-of-00008.tar": "43607cbc5ac9517e40f6401c2232d95a92e3456c177ded25bbe74d1862807b36",
    "imagenette2-sample-64-wds/train-00004-of-00008.tar": "33b9b187a75844fcfcfc4de3e2ecd482187eaf0279d1fc44b261f731ee966f47",
    "imagenette2-sample-64-wds/train-00005-of-00008.tar": "5e58c149ff41c776b8fe0119206d3e3441d3f138f9b03f4211fd34f45b98d5f8",
    "imagenette2-sample-64-wds/train-00006-of-00008.tar": "0f01fce4b415d984a08c044613ebb200064a05d7aa92cdf4704b510513c21fc5",
    "imagenette2-sample-64-wds/train-00007-of-00008.tar": "5f1a7de8d6f61c5fee2b9a37fe08908f391aeca979de260a46e71e68583f6c6a",
    "imagenette2-sample-64-wds/val-00000-of-00008.tar": "5c8942a1a0b62a26e50a7d9f8b3adcc1e74f0b326e7c7cf529b390e2e26f0dff",
    "imagenette2-sample-64-wds/val-00001-of-00008.tar": "555013644c79be8988009078d8a72bfdffe3044e58234c12a7f20818687436b9",
    "imagenette2-sample-64-wds/val-00002-of-00008.tar": "b01b0de5e691636f54a57a61e51ef4bd59014421a662eb1e542d07e26b741c87",
    "imagenette2-sample-64-wds/val-00003-of-00008.tar": "41826d9904c0c98708764271c65223bac4fd70dcba37279aa6458910cc3543a6",
    "imagenette2-sample-64-wds/val-00004-of-00008.tar": "a2c0d2c222486938997fcb10d5589b2da1106f740d8f71eb7b7c03fe61d37723",
    "imagenette2-sample-64-wds/val-00005-of-00008.tar": "002a9bc0c5285ecc0caaec47dd79179da8773d26de59af22b53882d1ad0d3a42",
    "imagenette2-sample-64-wds/val-00006-of-00008.tar": "d12fe06cef83cb252683738d506d23a448987f96515954613c7a4a81b9c4af82",
    "imagenette2-sample-64-wds/val-00007-of-00008.tar": "4f4ec38af62729e920f198c9dbe818dee59a0cd006f8750e8bbeb696dd5865f8",
    "imagenette2-sample-wds/train-00000-of-00008.tar": "df569d2d1777c205e96f400f394a1d785ba59b9c9c08c462dbf995743735396e",
    "imagenette2-sample-wds/train-00001-of-00008.tar": "a4bfd3a209485c983752e7eae11931cb690aea2d3a333adb57b51f8e52846b29",
    "imagenette2-sample-wds/train-00002-of-00008.tar": "a86da4e46186cfe1ca6cccd82ab69290424237b06537a5445578f039f0d46c9e",
    "imagenette2-sample-wds/train-00003-of-00008.tar": "53c68656faed3e7b561b57fb4c7ba10e00fa61411849629d30c33c7e53b9e823",
    "imagenette2-sample-wds/train-00004-of-00008.tar": "0ce4c60279311223a6ca702d55d830c998b51bf0a1a5deb81ef85c7d49cf4707",
    "imagenette2-sample-wds/train-00005-of-00008.tar": "b4f7ad3e2a82a28cf7b28caede9d2bc34a59e4a682b20e004a28d87ac94d8ecb",
    "imagenette2-sample-wds/train-00006-of-00008.tar": "66955cf2c2ed44dbee0682a65909dc17c4b4debf06e2f522c8169241b7917923",
    "imagenette2-sample-wds/train-00007-of-00008.tar": "47edb33cd1325763e163fe8caa6a78cd32eba42521b0998d25ff9bc71761ef30",
    "imagenette2-sample-wds/val-00000-of-00008.tar": "0bb503c9a365125be605f7a2572ab5a1cc410cd62bb4bc61b682a9c748188d7a",
    "imagenette2-sample-wds/val-00001-of-00008.tar": "73f2073c34e09acb2e85762fda8b2266bf1483881b336bb6b1834aee8cd6a55d",
    "imagenette2-sample-wds/val-00002-of-00008.tar": "538d37be0ca002d5f5388ac851b530a25e5733d476c0d75ef19eb52903a060d8",
    "imagenette2-sample-wds/val-00003-of-00008.tar": "2e67d9740b3e714b9cf3d89c80daf8853cf2f23ba8cc576b8893cb8c769539ab",
    "imagenette2-sample-wds/val-00004-of-00008.tar": "44179161ffa5743584b55534b98bda5be55104bc71a14871b68010065132a839",
    "imagenette2-sample-wds/val-00005-of-00008.tar": "123f359f2c04f3d33a55c40f7a074673ec1068b7ad28db1868e9366bb6af64ef",
    "imagenette2-sample-wds/val-00006-of-00008.tar": "44305bd3f4178fbfbb5e53de3fd35f7ac38a63f19374de91652473131bb45e92",
    "imagenette2-sample-wds/val-00007-of-00008.tar": "b40d02a3ffd965cfbe5e49adbfe1a175b6bd9f7a916b1ad5fb262986d7d72565",
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
    # the shards (their documents, the card and contact sheet, name versions of the toolchain)
    assert {p: h for p, h in sums.items() if "-wds/" in p and p.endswith(".tar")} == GOLDEN_SHARDS
