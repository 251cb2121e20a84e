"""Where every member came from (`<stem>.provenance.csv`, the parquet columns, the WebDataset JSON
fields) and the duplicates across splits (the report's `duplicates`), built from the sample
ImageNet by the real command line; everything expected is computed here from the files."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest
from PIL import Image

from ..conftest import run_cli

pq = pytest.importorskip("pyarrow.parquet")

FORMATS = ("--format", "tgz", "--format", "parquet", "--format", "webdataset")


def _build(root: Path, manifest: Path, out: Path, *args) -> None:
    r = run_cli("--imagenet", root, "--manifest", manifest, "--out", out, "-q", *FORMATS, *args)
    assert r.returncode == 0, r.stderr


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sources(root: Path) -> dict[str, Path]:
    """{ILSVRC file name: its file} of a sample copy."""
    return {p.name: p for p in root.rglob("*.JPEG")}


def _csv_rows(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def _image_members(tgz: Path) -> list[tuple[str, bytes]]:
    """(member below the top folder, bytes) of every image of a .tgz, in archive order."""
    with tarfile.open(tgz) as tar:
        return [(m.name.partition("/")[2], tar.extractfile(m).read()) for m in tar
                if m.isfile() and m.name.count("/") == 3]


def _parquet_rows(folder: Path) -> dict[str, dict]:
    rows = {}
    for shard in sorted(folder.glob("*.parquet")):
        for row in pq.read_table(shard).to_pylist():
            rows[row["image"]["path"]] = row
    return rows


def _wds_meta(folder: Path) -> dict[str, tuple[dict, bytes]]:
    out = {}
    for shard in sorted(folder.glob("*.tar")):
        with tarfile.open(shard) as tar:
            files = {m.name: tar.extractfile(m).read() for m in tar}
        for name, data in files.items():
            if name.endswith(".json"):
                meta = json.loads(data)
                out[meta["member"]] = (meta, files[name[:-len(".json")] + ".jpg"])
    return out


@pytest.fixture(scope="module")
def built(sample, tmp_path_factory):
    """The sample at 64 px and full size, every format, with --jobs 2 and --jobs 1."""
    root, manifest = sample
    outs = {}
    for jobs in ("2", "1"):
        out = tmp_path_factory.mktemp(f"jobs{jobs}")
        _build(root, manifest, out, "--size", "64", "--size", "full", "--no-cache", "-j", jobs)
        outs[jobs] = out
    return root, outs


@pytest.mark.parametrize("stem", ["imagenette2-sample-64", "imagenette2-sample"])
def test_provenance_rows_are_the_plan_and_the_bytes_in_every_format(built, stem):
    root, outs = built
    out = outs["2"]
    sources = _sources(root)
    members = _image_members(out / f"{stem}.tgz")
    rows = _csv_rows(out / f"{stem}.provenance.csv")
    assert len(rows) == len(members) == 50
    # the plan: every path of the manifest's file list, in its split
    listed = list(csv.DictReader((root / "noisy_imagenette.csv").open()))
    assert {(r["member"], r["split"]) for r in rows} == \
        {(r["path"], "val" if r["is_valid"] == "True" else "train") for r in listed}
    full = stem == "imagenette2-sample"
    for row, (member, data) in zip(rows, members):
        name = member.rpartition("/")[2]
        source = sources[name].read_bytes()
        assert row == {
            "member": member, "split": member.split("/")[0], "wnid": member.split("/")[1],
            "source_split": "val" if name.startswith("ILSVRC2012_val_") else "train", "source_file": name,
            "source_sha256": _sha(source), "member_sha256": _sha(data),
            "recipe": "original bytes" if full else
                      "64 px short side, bicubic, JPEG quality 75, rounding script, decode full"}
        if full:
            assert data == source
    # the report lists it, and so do the sums files
    report = json.loads((out / f"{stem}.json").read_text())
    csv_bytes = (out / f"{stem}.provenance.csv").read_bytes()
    assert report["provenance"] == {"file": f"{stem}.provenance.csv", "sha256": _sha(csv_bytes), "rows": 50}
    assert f"{_sha(csv_bytes)}  {stem}.provenance.csv\n" in (out / "SHA256SUMS").read_text()
    assert f"{hashlib.md5(csv_bytes).hexdigest()}  {stem}.provenance.csv\n" in (out / "MD5SUMS").read_text()
    # the parquet columns and the WebDataset fields say the same of each member
    by_member = {r["member"]: r for r in rows}
    keys = ("source_split", "source_file", "source_sha256", "member", "member_sha256")
    parquet = _parquet_rows(out / f"{stem}-parquet")
    assert set(parquet) == set(by_member)
    wds = _wds_meta(out / f"{stem}-wds")
    assert set(wds) == set(by_member)
    for member, row in by_member.items():
        want = {k: row[k] for k in keys}
        assert {k: parquet[member][k] for k in keys} == want
        assert _sha(parquet[member]["image"]["bytes"]) == row["member_sha256"]
        meta, jpg = wds[member]
        assert {k: meta[k] for k in keys} == want and _sha(jpg) == row["member_sha256"]


def test_the_same_bytes_with_one_job_and_two(built):
    _, outs = built
    for stem in ("imagenette2-sample-64", "imagenette2-sample"):
        assert (outs["1"] / f"{stem}.provenance.csv").read_bytes() == (outs["2"] / f"{stem}.provenance.csv").read_bytes()
        for suffix in ("parquet", "wds"):
            one, two = (sorted((o / f"{stem}-{suffix}").iterdir()) for o in (outs["1"], outs["2"]))
            assert [p.name for p in one] == [p.name for p in two] and one
            assert all(a.read_bytes() == b.read_bytes() for a, b in zip(one, two))
        reports = [json.loads((o / f"{stem}.json").read_text()) for o in (outs["1"], outs["2"])]
        assert reports[0]["duplicates"] == reports[1]["duplicates"]


def test_a_clean_copy_has_no_duplicates(built):
    _, outs = built
    for stem in ("imagenette2-sample-64", "imagenette2-sample"):
        dup = json.loads((outs["2"] / f"{stem}.json").read_text())["duplicates"]
        assert dup["images"] == 50 and dup["groups"] == [] and dup["exact"]["groups"] == dup["near"]["groups"] == 0


def _tamper_csv(path: Path, line: int) -> str:
    """Replace the member_sha256 of the row on `line`; the member it names."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    row = next(csv.reader([lines[line]]))
    row[6] = "0" * 64
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(row)
    lines[line] = buf.getvalue()
    path.write_text("".join(lines), encoding="utf-8")
    return row[0]


def test_a_tampered_provenance_row_fails_verify_naming_the_member(built, tmp_path):
    _, outs = built
    out = tmp_path / "out"
    shutil.copytree(outs["2"], out)
    stem = "imagenette2-sample-64"
    r = run_cli("verify", out / f"{stem}.tgz")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "50 of 50 images as imagenette2-sample-64.provenance.csv says" in r.stdout
    member = _tamper_csv(out / f"{stem}.provenance.csv", 7)
    r = run_cli("verify", out / f"{stem}.tgz")
    assert r.returncode == 1
    assert "FAIL  members" in r.stdout
    assert f"against {stem}.provenance.csv: 1 members differ: {stem}/{member}" in r.stdout
    assert "changed since the build" in r.stdout


def test_a_member_whose_bytes_differ_from_its_parquet_row_fails_verify(built, tmp_path):
    _, outs = built
    folder = tmp_path / "imagenette2-sample-64-parquet"
    shutil.copytree(outs["2"] / folder.name, folder)
    r = run_cli("verify", folder)
    assert r.returncode == 0 and "50 of 50 rows' provenance their own" in r.stdout, r.stdout + r.stderr
    shard = sorted(folder.glob("train-*.parquet"))[0]
    table = pq.read_table(shard)
    rows = table.to_pylist()
    rows[0]["member_sha256"] = "f" * 64
    pq.write_table(type(table).from_pylist(rows, schema=table.schema), shard, compression="none",
                   use_dictionary=False, write_statistics=False)
    r = run_cli("verify", folder)
    assert r.returncode == 1 and "FAIL  members" in r.stdout
    assert (f"1 rows whose provenance is not their own image's: {shard.name}/{rows[0]['image']['path']} "
            f"(member_sha256 '{'f' * 64}')") in r.stdout


def _planted(sample, tmp_path) -> tuple[Path, Path, dict]:
    """A copy of the sample with an exact duplicate (a train member's file copied over a val
    member's, which keeps its name) and a near one (another train member's image, re-encoded at
    another quality and resized by 3 %, over another val member's file) across train and val."""
    root, manifest = sample
    copy = tmp_path / "imagenet"
    shutil.copytree(root, copy)
    sources = _sources(copy)
    listed = list(csv.DictReader((copy / "noisy_imagenette.csv").open()))
    train = [r["path"] for r in listed if r["is_valid"] == "False"]
    val = [r["path"] for r in listed if r["is_valid"] == "True"]
    big = [m for m in train if min(Image.open(sources[m.rpartition("/")[2]]).size) >= 300]
    (a, a2), (b, c) = big[:2], val[:2]

    def source(member: str) -> Path:
        return sources[member.rpartition("/")[2]]

    source(b).write_bytes(source(a).read_bytes())
    img = Image.open(source(a2)).convert("RGB")
    img = img.resize((round(img.width * 0.97), round(img.height * 0.97)), Image.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=60)
    source(c).write_bytes(buf.getvalue())
    return copy, copy / manifest.relative_to(root), {"exact": (a, b), "near": (a2, c)}


def test_planted_duplicates_across_train_and_val_are_found(sample, tmp_path):
    root, manifest, planted = _planted(sample, tmp_path)
    out = tmp_path / "out"
    _build(root, manifest, out, "--size", "64", "--size", "full", "--no-cache", "-j", "2")
    for stem in ("imagenette2-sample-64", "imagenette2-sample"):
        dup = json.loads((out / f"{stem}.json").read_text())["duplicates"]
        exact = [g for g in dup["groups"] if g["kind"] == "exact"]
        near = [g for g in dup["groups"] if g["kind"] == "near"]
        assert [(g["members"], g["splits"], g["same_bytes"]) for g in exact] == \
            [(list(planted["exact"]), ["train", "val"], True)], stem
        assert [(sorted(g["members"]), g["splits"]) for g in near] == [(sorted(planted["near"]), ["train", "val"])], stem
        assert dup["exact"]["groups_across_splits"] == dup["near"]["groups_across_splits"] == 1
        # (the exact pair is in no near group of its own: a near group holds two contents or more)


def test_a_cache_hit_gives_the_provenance_and_duplicates_of_a_cold_build(sample, tmp_path):
    root, manifest, _ = _planted(sample, tmp_path)
    cold, warm = tmp_path / "cold", tmp_path / "warm"
    _build(root, manifest, cold, "--size", "64", "--no-cache", "-j", "2")
    cache = tmp_path / "cache"
    _build(root, manifest, tmp_path / "first", "--size", "64", "--cache", cache, "-j", "2")
    _build(root, manifest, warm, "--size", "64", "--cache", cache, "-j", "2")
    stem = "imagenette2-sample-64"
    report = json.loads((warm / f"{stem}.json").read_text())
    assert (report["cache"]["hits"], report["cache"]["misses"]) == (50, 0)
    assert (warm / f"{stem}.provenance.csv").read_bytes() == (cold / f"{stem}.provenance.csv").read_bytes()
    assert report["duplicates"] == json.loads((cold / f"{stem}.json").read_text())["duplicates"]
    assert report["duplicates"]["exact"]["groups"] == report["duplicates"]["near"]["groups"] == 1


def test_an_archive_whose_report_names_no_provenance_passes_with_a_note(built, tmp_path):
    """A build of an earlier version wrote no provenance: nothing to compare, said, not failed."""
    _, outs = built
    stem = "imagenette2-sample-64"
    for name in (f"{stem}.tgz", f"{stem}.members.sha256"):
        shutil.copy(outs["2"] / name, tmp_path)
    report = json.loads((outs["2"] / f"{stem}.json").read_text())
    del report["provenance"]
    (tmp_path / f"{stem}.json").write_text(json.dumps(report))
    r = run_cli("verify", tmp_path / f"{stem}.tgz")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"no provenance to compare with ({stem}.json names none: a build of an earlier version)" in r.stdout
