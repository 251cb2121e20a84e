"""Croissant metadata (croissant.py): `mlcroissant` validates it with no error and no warning, and
its `images` record set yields every row of the parquet shards with its label's class name, split
and provenance; each shard is a FileObject with its sha256."""

from __future__ import annotations

import hashlib
import json
import logging
import warnings

import pytest

from imagenette_build.croissant import croissant_jsonld, dumps

from .. import hubkit

mlc = pytest.importorskip("mlcroissant")  # in the test extra: CI has it


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def _load(path, caplog):
    """The dataset as mlcroissant reads it, and every issue it reports: its validation's errors and
    warnings, its logged warnings, and Python warnings that are about the metadata (not the
    deprecation warnings of mlcroissant's own use of pandas and rdflib)."""
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        ds = mlc.Dataset(jsonld=str(path))
        records = list(ds.records(record_set="images"))
    issues = ds.metadata.ctx.issues
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    ours = [str(w.message) for w in caught if not issubclass(w.category, (DeprecationWarning, FutureWarning))]
    return records, sorted(issues.errors) + sorted(issues.warnings) + logged + ours


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("croissant") / "tiny-12-parquet"
    info = hubkit.write_parquet_folder(path)
    return path, {**info, "date": "2021-02-06", "version": "0.1.0"}


def test_mlcroissant_validates_it_and_reads_every_row(folder, caplog):
    path, info = folder
    (path / "croissant.json").write_text(dumps(croissant_jsonld(info)), encoding="utf-8")
    records, issues = _load(path / "croissant.json", caplog)
    assert issues == []
    names = {c["index"]: c["name"] for c in hubkit.CLASSES}
    got = sorted((_text(r["images/member"]), _text(r["images/split"]), r["images/label"],
                  _text(r["images/label_name"]), _text(r["images/wnid"]), r["images/noisy_labels_5"],
                  _text(r["images/source_split"]), _text(r["images/source_file"]), _text(r["images/source_sha256"]),
                  _text(r["images/member_sha256"]), r["images/image"].size) for r in records)
    want = sorted((r["member"], r["split"], r["label"], names.get(r["label"]), r["wnid"], r["noisy_labels_5"],
                   r["source_split"], r["source_file"], r["source_sha256"], r["member_sha256"],
                   (12 + i % 5, 10)) for i, r in enumerate(hubkit.rows()))
    assert got == want
    assert sum(r[3] is None for r in got) == 2  # the unlabelled split: label -1, no class name


def test_without_a_date_and_a_version_mlcroissant_says_so(folder, caplog, tmp_path):
    """The only warnings left when the build gives no date or version (it must give both)."""
    path, info = folder
    for f in path.glob("*.parquet"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    bare = {k: v for k, v in info.items() if k not in ("date", "version")}
    (tmp_path / "croissant.json").write_text(dumps(croissant_jsonld(bare)), encoding="utf-8")
    _, issues = _load(tmp_path / "croissant.json", caplog)
    problems = {i for i in issues if "recommended, but does not exist" in i and "during the validation" not in i}
    assert {p.split('"')[1] for p in problems} == {"https://schema.org/datePublished", "https://schema.org/version"}


def test_the_distribution_and_the_record_sets(folder):
    path, info = folder
    doc = croissant_jsonld(info)
    assert doc == json.loads(dumps(doc)) and dumps(doc) == dumps(croissant_jsonld(dict(info)))  # deterministic
    assert doc["conformsTo"] == "http://mlcommons.org/croissant/1.0"
    assert doc["license"] == "https://www.image-net.org/download.php" and "non-commercial" in doc["usageInfo"]
    assert doc["datePublished"] == "2021-02-06" and doc["version"] == "0.1.0"
    assert "@article{ILSVRC15," in doc["citeAs"]
    objects = [d for d in doc["distribution"] if d["@type"] == "cr:FileObject"]
    assert [(o["contentUrl"], o["sha256"]) for o in objects] == [
        (f["path"], hashlib.sha256((path / f["path"]).read_bytes()).hexdigest()) for fs in info["files"].values()
        for f in fs]
    assert all(o["encodingFormat"] == "application/x-parquet" and not o["contentUrl"].startswith("/") for o in objects)
    sets = {r["@id"]: r for r in doc["recordSet"]}
    assert sets["classes"]["dataType"] == "sc:Enumeration"
    assert sets["classes"]["data"][1] == {"classes/index": 1, "classes/wnid": "n02102040",
                                          "classes/name": "English springer"}
    assert sets["splits"]["data"] == [{"splits/name": "train", "splits/url": "cr:TrainingSplit"},
                                      {"splits/name": "val", "splits/url": "cr:ValidationSplit"},
                                      {"splits/name": "unsup", "splits/url": "cr:Split"}]
    label = next(f for f in sets["images"]["field"] if f["@id"] == "images/label")
    assert "cr:Label" in label["dataType"] and label["references"] == {"field": {"@id": "classes/index"}}
    assert [f["@id"] for f in sets["images"]["field"]] == [
        "images/image", "images/label", "images/label_name", "images/split"] + [
        f"images/{c}" for c in hubkit.COLUMNS if c not in ("image", "label")]
    rai = {k for k in doc if k.startswith("rai:")}
    assert {"rai:dataCollection", "rai:dataBiases", "rai:dataLimitations", "rai:dataUseCases"} <= rai
    assert "val: 2 from ILSVRC-2012 train, 2 from ILSVRC-2012 val" in doc["rai:dataCollectionRawData"]
    assert "Duplicates were not looked for" in " ".join(doc["rai:dataLimitations"])


def test_only_parquet_and_only_known_columns(folder):
    _, info = folder
    with pytest.raises(ValueError, match="not webdataset"):
        croissant_jsonld({**info, "format": "webdataset"})
    with pytest.raises(ValueError, match="column 'extra'"):
        croissant_jsonld({**info, "columns": info["columns"] + ["extra"]})
