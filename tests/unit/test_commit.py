"""Committing a size's outputs (commit.py): what the report says about fidelity, and the report
itself."""

from __future__ import annotations

import hashlib
import json

import imagenette_build as ib
from imagenette_build import commit, toolchain
from imagenette_build.transform import Recipe


def test_a_jpeg_library_that_is_not_turbo_is_said(monkeypatch):
    real = toolchain.features.check_feature
    monkeypatch.setattr(toolchain.features, "check_feature", lambda f: False if f == "libjpeg_turbo" else real(f))
    assert "not libjpeg-turbo" in toolchain.jpeg_problem()
    facts = commit.fidelity(Recipe())
    assert facts["published_recipe"] and not facts["published_bytes_possible"]
    assert "cannot be byte-identical to the published images" in facts["problems"][0]


def test_fidelity_names_each_field_that_departs_from_the_published_recipe(monkeypatch):
    monkeypatch.setattr(toolchain, "jpeg_problem", lambda: None)  # (the real one: the test above)
    assert commit.fidelity(Recipe()) == {"recipe": "fastai-2018", "published_recipe": True,
                                         "published_bytes_possible": True, "problems": []}
    facts = commit.fidelity(Recipe(filter="lanczos", quality=90))
    assert facts == {"recipe": "custom", "published_recipe": False, "published_bytes_possible": False,
                     "problems": ["not the published recipe (filter lanczos, quality 90)"]}


REPORT_KEYS = ["archive", "stem", "size", "manifest", "source", "options", "settings", "images", "counts", "leakage",
               "classes",
               "skipped",
               "root_files", "outputs", "fidelity", "cache", "duplicates", "archive_bytes", "sha256", "md5",
               "md5_first_mib", "tar_sha256", "tar_members", "members_sha256", "provenance", "toolchain"]


def test_the_report_of_a_small_build(sample, tmp_path):
    """Built in this process (the sample at 8 px, one job): the report's fields, in their order,
    and what they say about the files beside it."""
    root, manifest_path = sample
    resized, full = ib.build(root, manifest=str(manifest_path), sizes=[8, "full"], out=tmp_path, jobs=1,
                             no_cache=True)
    assert list(resized) == REPORT_KEYS and list(full) == REPORT_KEYS
    archive = tmp_path / resized["archive"]
    assert (resized["archive"], resized["stem"], resized["size"]) == ("imagenette2-sample-8.tgz",
                                                                      "imagenette2-sample-8", "8")
    assert resized["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert resized["archive_bytes"] == archive.stat().st_size
    archive_file, rows_file, *documents = resized["outputs"]["tgz"]["files"]
    assert archive_file == {"path": resized["archive"], "bytes": resized["archive_bytes"],
                            "sha256": resized["sha256"], "md5": resized["md5"]}
    rows = tmp_path / "imagenette2-sample-8.provenance.csv"
    assert rows_file == {"path": rows.name, "bytes": rows.stat().st_size,
                         "sha256": hashlib.sha256(rows.read_bytes()).hexdigest(),
                         "md5": hashlib.md5(rows.read_bytes()).hexdigest()}
    assert resized["provenance"] == {"file": rows.name, "sha256": rows_file["sha256"], "rows": 50}
    assert resized["duplicates"]["images"] == 50
    assert [f["path"] for f in documents] == ["imagenette2-sample-8.README.md", "imagenette2-sample-8.preview.png"]
    for f in documents:  # beside the archive, as listed
        assert hashlib.sha256((tmp_path / f["path"]).read_bytes()).hexdigest() == f["sha256"]
    # the leakage table, from the members' file names (counted here without leakage.py)
    members = [line.split("  ", 1)[1] for line in
               (tmp_path / "imagenette2-sample-8.members.sha256").read_text().splitlines()]
    images = [m for m in members if m.count("/") == 2]
    assert resized["leakage"] == {s: {"imagenet_train": sum(m.startswith(s + "/") and not
                                                            m.rsplit("/", 1)[1].startswith("ILSVRC2012_val_")
                                                            for m in images),
                                      "imagenet_val": sum(m.startswith(s + "/") and
                                                          m.rsplit("/", 1)[1].startswith("ILSVRC2012_val_")
                                                          for m in images),
                                      "unknown": 0} for s in ("train", "val")}
    assert resized["images"] == 50 and resized["skipped"] == [] and resized["cache"] is None
    assert [c["wnid"] for c in resized["classes"]] == sorted(c["wnid"] for c in resized["classes"])
    assert resized["options"]["sizes"] == ["8", "full"] and resized["options"]["recipe"]["name"] == "fastai-2018"
    assert resized["options"]["no_cache"] is True and resized["settings"]["mtime"] == 1612569600
    assert resized["fidelity"]["recipe"] == "fastai-2018"
    # full size: the sources' bytes, no recipe and no fidelity to speak of
    assert full["options"]["recipe"] == "original bytes" and full["fidelity"] is None
    assert json.loads((tmp_path / "imagenette2-sample.json").read_text()) == full


# ------------------------------------------------------------------------------ outputs kept from an earlier build

STEM = "s-8"
SHARD = f"{STEM}-parquet/train-00000-of-00001.parquet"
DIGESTS = {"sha256": "a" * 64, "md5": "b" * 32}


def _earlier(out, outputs, **top) -> None:
    """An earlier report, and the SHA256SUMS lines of the files it lists (as a build writes them)."""
    (out / f"{STEM}.json").write_text(json.dumps({"stem": STEM, "options": {"jobs": 2}, "outputs": outputs, **top}))
    files = [f for o in outputs.values() if isinstance(o, dict) and isinstance(o.get("files"), list)
             for f in o["files"] if isinstance(f, dict) and isinstance(f.get("path"), str)]
    (out / "SHA256SUMS").write_text("".join(f"{'a' * 64}  {f['path']}\n" for f in files if "\n" not in f["path"]))


def _kept(out) -> dict:
    return commit.kept_outputs(out, STEM, ["webdataset"], {"stem": STEM, "options": {"jobs": 1}, "outputs": {}})


def test_an_output_of_an_earlier_report_is_kept_only_as_it_is_on_disk(tmp_path):
    """The earlier report is a file anyone could have written: an entry is kept only when each of
    its files is this format's own (no path outside its folder), a regular file of the size it
    says, in a real folder, with the same sha256 in SHA256SUMS; anything odd drops the entry, never
    raises."""
    (tmp_path / f"{STEM}-parquet").mkdir()
    (tmp_path / SHARD).write_bytes(b"x" * 10)
    good = {"folder": f"{STEM}-parquet", "files": [{"path": SHARD, "bytes": 10, **DIGESTS}]}
    _earlier(tmp_path, {"parquet": good})
    assert _kept(tmp_path) == {"parquet": {**good, "earlier_build": {"options": {"jobs": 2}}}}
    (tmp_path / "secret").write_bytes(b"x" * 10)
    for path in ("secret", f"{STEM}-parquet/../secret", f"/{SHARD}", f"{STEM}-parquet/.hidden", f"{STEM}-wds/x.tar"):
        _earlier(tmp_path, {"parquet": {**good, "files": [{**good["files"][0], "path": path}]}})
        assert _kept(tmp_path) == {}, path
    for change in ({"bytes": 11}, {"bytes": True}, {"bytes": "10"}, {"sha256": "z" * 64}, {"md5": None}):
        _earlier(tmp_path, {"parquet": {**good, "files": [{**good["files"][0], **change}]}})
        assert _kept(tmp_path) == {}, change
    for entry in ({"files": []}, {"files": "x"}, [], None, {"files": [None]}, {**good, "folder": "../x"}):
        _earlier(tmp_path, {"parquet": entry})
        assert _kept(tmp_path) == {}, entry
    _earlier(tmp_path, {"zip": good, "webdataset": good})  # an unknown format; one rebuilt now
    assert _kept(tmp_path) == {}
    _earlier(tmp_path, {"parquet": good}, stem="other")
    assert _kept(tmp_path) == {}
    for text in ("not json", "[1]", "[" * 100_000, '{"stem": "s-8", "outputs": 5}', '{"stem": "s-8", "x": 1' + "0" * 5000 + "}"):
        (tmp_path / f"{STEM}.json").write_text(text)
        assert _kept(tmp_path) == {}, text[:20]
    _earlier(tmp_path, {"parquet": good})
    (tmp_path / "SHA256SUMS").write_text(f"{'c' * 64}  {SHARD}\n")  # the line and the report disagree
    assert _kept(tmp_path) == {}
    _earlier(tmp_path, {"parquet": good})
    (tmp_path / f"{STEM}-parquet").rename(tmp_path / "moved")
    (tmp_path / f"{STEM}-parquet").symlink_to(tmp_path / "moved")  # the same files, through a link
    assert _kept(tmp_path) == {}


def test_a_kept_archive_without_its_member_list_is_kept_without_it(tmp_path):
    (tmp_path / f"{STEM}.tgz").write_bytes(b"x" * 3)
    members = {"file": f"{STEM}.members.sha256", "sha256": "c" * 64}
    tgz = {"files": [{"path": f"{STEM}.tgz", "bytes": 3, **DIGESTS}], "members_sha256": members, "tar_members": 7}
    _earlier(tmp_path, {"tgz": tgz})
    assert _kept(tmp_path)["tgz"]["members_sha256"] is None
    (tmp_path / f"{STEM}.members.sha256").write_text("")
    kept = _kept(tmp_path)
    assert kept["tgz"]["members_sha256"] == members
    merged = commit.merged({"archive": None, "stem": STEM, "outputs": {}}, kept)
    assert (merged["archive"], merged["archive_bytes"], merged["sha256"], merged["tar_members"],
            merged["members_sha256"]) == (f"{STEM}.tgz", 3, "a" * 64, 7, members)


def test_a_kept_archive_without_its_provenance_is_kept_without_it(tmp_path):
    (tmp_path / f"{STEM}.tgz").write_bytes(b"x" * 3)
    rows = {"file": f"{STEM}.provenance.csv", "sha256": "a" * 64, "rows": 2}
    tgz = {"files": [{"path": f"{STEM}.tgz", "bytes": 3, **DIGESTS},
                     {"path": rows["file"], "bytes": 4, **DIGESTS}], "provenance": rows}
    _earlier(tmp_path, {"tgz": tgz})
    kept = _kept(tmp_path)["tgz"]
    assert (kept["files"], kept["provenance"]) == (tgz["files"][:1], None)  # the report no longer names it
    (tmp_path / rows["file"]).write_text("abcd")
    kept = _kept(tmp_path)["tgz"]
    assert (kept["files"], kept["provenance"]) == (tgz["files"], rows)
    assert commit.merged({"archive": None, "stem": STEM, "outputs": {}}, _kept(tmp_path))["provenance"] == rows
    (tmp_path / "secret").write_text("abcd")
    (tmp_path / f"{STEM}.members.sha256").write_text("abcd")
    for other in ("secret", f"{STEM}.members.sha256", f"../{rows['file']}"):  # a second file is its provenance only
        _earlier(tmp_path, {"tgz": {**tgz, "files": [tgz["files"][0], {**tgz["files"][1], "path": other}]}})
        kept = _kept(tmp_path)["tgz"]
        assert (kept["files"], kept["provenance"]) == (tgz["files"][:1], None), other


def test_an_output_kept_twice_says_how_its_own_build_differed(tmp_path):
    """A build's report says what an earlier build's output differed in; a third build reads that
    and says it again, against itself: the earlier options are never lost, the same are not repeated."""
    (tmp_path / f"{STEM}.tgz").write_bytes(b"x" * 3)
    tgz = {"files": [{"path": f"{STEM}.tgz", "bytes": 3, **DIGESTS}], "earlier_build": {"options": {"jobs": 7}}}
    _earlier(tmp_path, {"tgz": tgz}, fidelity="same")
    now = {"stem": STEM, "options": {"jobs": 2}, "fidelity": "same", "cache": {"hits": 1}, "outputs": {}}
    kept = commit.kept_outputs(tmp_path, STEM, ["parquet"], now)
    assert kept["tgz"]["earlier_build"] == {"options": {"jobs": 7}, "cache": None}
    now["options"] = {"jobs": 7}
    kept = commit.kept_outputs(tmp_path, STEM, ["parquet"], now)
    assert kept["tgz"]["earlier_build"] == {"cache": None}
