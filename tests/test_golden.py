"""Golden bytes: the sample ImageNet (4 images a class, generated the same on every Pillow) built
with the defaults gives exactly these bytes, on stock Pillow and on pillow-simd. A change that
moves any byte of an output fails here: a rewrite of the code must not; a deliberate change of
the output updates these values, saying why in its commit.

Compressor-independent values only: the sha256 of the uncompressed tar (the .tgz's deflate is
ISA-L's, which may change with its version), of the member list, of the WebDataset shards
(plain tar, written here) and of the provenance beside each archive."""

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
    "imagenette2-sample-64-wds/train-00000-of-00008.tar": "3ac35fc31b7a4da5df58bac22827ecee5663847c860ce169a28785cada7de635",
    "imagenette2-sample-64-wds/train-00001-of-00008.tar": "11b9d0e22a3b2de60f694cfff7acaf0ef5c5636a24dd040e60c105d9e212c129",
    "imagenette2-sample-64-wds/train-00002-of-00008.tar": "42992991d47b03fdd696f82c7505ee0b738793212ac3ea885ccc7ea1075b57b1",
    "imagenette2-sample-64-wds/train-00003-of-00008.tar": "1501ad3d17e1a825135ad63f3fb6446f79391a8a82d213a771ce17cda70eff8c",
    "imagenette2-sample-64-wds/train-00004-of-00008.tar": "ac61d09ed3d0126b9ad866254e382c5f4636bc81ed5d23bbf9030663902a09d2",
    "imagenette2-sample-64-wds/train-00005-of-00008.tar": "83c7f719fa81608353b3c4d0cadf22441769a501e6d41677fe1d8ce9c2aa0475",
    "imagenette2-sample-64-wds/train-00006-of-00008.tar": "b621a39cd7f0efca09575812b255a2df3ce337143d78713bc72f51a2646b4b0c",
    "imagenette2-sample-64-wds/train-00007-of-00008.tar": "59c83ab9006f8ba7e155afda3b4c8cffa7d03e94f4ccd82de6cc542d8b77988f",
    "imagenette2-sample-64-wds/val-00000-of-00008.tar": "3a0bc86305ac7135ce66f225cbc7e5343095e0e9fdea6a1b5c8cb5b3ce8b5ba7",
    "imagenette2-sample-64-wds/val-00001-of-00008.tar": "71c2deb2139d245fccd9c6a786d42d913396a6fe47100740923c7cf56e841d7f",
    "imagenette2-sample-64-wds/val-00002-of-00008.tar": "bbb494e1fe49ade8d527e86dd69a1e8729ce9a472d1c9916a2184f1e5c9eea9e",
    "imagenette2-sample-64-wds/val-00003-of-00008.tar": "e884a617748454d268dff8d47a32a57863150ac1b03168ee4687b136f687c01a",
    "imagenette2-sample-64-wds/val-00004-of-00008.tar": "1b29ea12bca0d815e11d22c264391364dce3c918fb9492297b58c058dfd07b53",
    "imagenette2-sample-64-wds/val-00005-of-00008.tar": "06c76204ac74e1f37d74193cedd6fdeef7cd21652dcd084769e100bf12e5807e",
    "imagenette2-sample-64-wds/val-00006-of-00008.tar": "ad33ff98eddd4cb5d898345e95906675d7fbcbd4b4125db8b88c8a236bad9df8",
    "imagenette2-sample-64-wds/val-00007-of-00008.tar": "01ede0232369407335b45bb69703fc0af7c0e04ca5a780e326465f4ae4a0040c",
    "imagenette2-sample-wds/train-00000-of-00008.tar": "47120d1a74ea4a02c2994fa2d944e209b8805684f5a4f71a893243c5f4b49983",
    "imagenette2-sample-wds/train-00001-of-00008.tar": "297487373ac24281507332a735d12f17872ac6cf54cf15d72370f388faea1513",
    "imagenette2-sample-wds/train-00002-of-00008.tar": "f7bc60d5de9d05c1f106d6ee43ab697e79b9b3d3b576f8189864945f1120ce00",
    "imagenette2-sample-wds/train-00003-of-00008.tar": "7e49f731f04851603ea77010e9c19f0d61ab1ea7dc46b3b76c2d66ea0cd06854",
    "imagenette2-sample-wds/train-00004-of-00008.tar": "39251bd7d36367e7cad5bb509a11fadccefef36c97c024bd3f877231417a326f",
    "imagenette2-sample-wds/train-00005-of-00008.tar": "b02c9871ab40ee6e05605289d3d3034ffd5c7112b4d21be0f4ad2b713f5a4539",
    "imagenette2-sample-wds/train-00006-of-00008.tar": "e1b082b3aa039ca1bd8128694fec95ed6b6320b95689cd7063d1703155c6e8d3",
    "imagenette2-sample-wds/train-00007-of-00008.tar": "ae485612cbc8155dad2dda4c978be963f4ed67f3238e0f8bcc7d286b1f52d427",
    "imagenette2-sample-wds/val-00000-of-00008.tar": "e4c36f0e2e9a94bb07f0f0bcd4cd52428220662c907c45c303136b850b625e22",
    "imagenette2-sample-wds/val-00001-of-00008.tar": "3325717a2584a30e038778bb329729d9e9550d346ad652063b1cd4322efff880",
    "imagenette2-sample-wds/val-00002-of-00008.tar": "28b9a6e0afa49238b8be7301d33e1015a8a57124ba181b62a2d04bfe2a59971e",
    "imagenette2-sample-wds/val-00003-of-00008.tar": "859ce8348ab0458b0937689faade66eb813e4cf54f526b8b0d514e7a213473fa",
    "imagenette2-sample-wds/val-00004-of-00008.tar": "a1883c093ab7e6f72e31f9d7b0ce56ae93aba8343ce7edb27d8ce3f80da54812",
    "imagenette2-sample-wds/val-00005-of-00008.tar": "e2382779d5161f2f414acd9c689dda60121fd30b7b31d2dd1ae7eb0f461d0457",
    "imagenette2-sample-wds/val-00006-of-00008.tar": "1bd10d3ccbb471bea41729a11cf2ffe6992ec6d945e819143ee56f2696b48e69",
    "imagenette2-sample-wds/val-00007-of-00008.tar": "6cbdbcbe5eb27508998ddb4dd02192079b9b9d42362787a4121bdafca3d35962",
}
# where each member came from, beside each .tgz (the source bytes' and the members' sha256: the same on
# every Pillow, as the members are)
GOLDEN_PROVENANCE = {
    "imagenette2-sample-64.provenance.csv": "0dff75322daa62b104b56fde63b764b08eb238fc3f3b76f0087a905046879eb5",
    "imagenette2-sample.provenance.csv": "72c8d36e82ac8356606072a606568cfc693765218b9a3bacbe7701969afae9e3",
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
    assert {p: h for p, h in sums.items() if p.endswith(".provenance.csv")} == GOLDEN_PROVENANCE
