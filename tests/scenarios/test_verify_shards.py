"""`verify` of the parquet and WebDataset outputs: a `<stem>-parquet/` or `<stem>-wds/` folder, or one
shard in it, checked level by level as a .tgz is (identity: the shards against the sums and the
report beside the folder; structure: each shard read whole, the labels and the counts; members:
each row's image against the build's member list; images; source with --imagenet). A flipped byte
in one image, a missing shard, a wrong label, and hostile shard folders each fail the right level
in one line, never with a traceback, unbounded memory or a hang.

Nothing here depends on the order of the rows or the number of shards: every shard is found from
the sums files."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from .. import faultkit as fk
from ..conftest import run_cli
from .test_hostile_verify import measured, tar_of

pq = pytest.importorskip("pyarrow.parquet")
pa = pytest.importorskip("pyarrow")

STEM = "imagenette2-sample-64"
FOLDERS = {"parquet": f"{STEM}-parquet", "webdataset": f"{STEM}-wds"}
TIMEOUT = 300


@pytest.fixture(scope="module")
def built(sample, tmp_path_factory):
    """The sample at 64 px as a .tgz, parquet and WebDataset shards (40 KiB: several a split)."""
    root, manifest_path = sample
    out = tmp_path_factory.mktemp("dist")
    r = run_cli("--imagenet", root, "--manifest", manifest_path, "--size", "64", "--out", out, "-q", "-j", "2",
                "--format", "tgz", "--format", "parquet", "--format", "webdataset", "--shard-size", "40K")
    assert r.returncode == 0, r.stderr
    return root, Path(manifest_path), out


@pytest.fixture
def out(built, tmp_path):
    """A copy of the build's output folder, to change."""
    dest = tmp_path / "dist"
    shutil.copytree(built[2], dest, ignore=shutil.ignore_patterns(".imagenette-cache"))
    return dest


def shards(out: Path, fmt: str, split: str | None = None) -> list[str]:
    """The shards of a format (of a split), as SHA256SUMS lists them, by name (not the folder's
    documents: its card, Croissant metadata and contact sheet)."""
    folder = FOLDERS[fmt]
    names = [p.split("/", 1)[1] for p in fk.parse_sums(out / "SHA256SUMS") if p.startswith(f"{folder}/")
             and p.endswith((".parquet", ".tar"))]
    return sorted(n for n in names if split is None or n.startswith(f"{split}-"))


def relist(out: Path, rel: str) -> None:
    """The sums lines and the report's entry of `rel` made those of its bytes now, as if the build
    had written it: only what is inside the shard can then tell the change."""
    data = (out / rel).read_bytes()
    sha256, md5 = hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest()
    for name, digest in (("SHA256SUMS", sha256), ("MD5SUMS", md5)):
        lines = (out / name).read_text().splitlines()
        (out / name).write_text("".join(f"{digest}  {rel}\n" if ln.endswith(f"  {rel}") else f"{ln}\n"
                                        for ln in lines))
    report = json.loads((out / f"{STEM}.json").read_text())
    for entry in report["outputs"].values():
        for f in entry["files"]:
            if f["path"] == rel:
                f.update(bytes=len(data), sha256=sha256, md5=md5)
    (out / f"{STEM}.json").write_text(json.dumps(report))


def verify(path: Path, *args) -> tuple[int, dict]:
    r = run_cli("verify", path, "-q", "-j", "2", "--json", *args, timeout=TIMEOUT)
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode in (0, 1), (r.returncode, r.stderr)
    return r.returncode, json.loads(r.stdout)


def level(report: dict, name: str) -> dict:
    return next(lv for lv in report["levels"] if lv["level"] == name)


def failed(report: dict) -> list[str]:
    return [lv["level"] for lv in report["levels"] if not lv["passed"]]


def rewrite_wds(path: Path, change) -> None:
    """The tar at `path` written again, each member's bytes `change(name, data)`."""
    with tarfile.open(path) as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]
    path.write_bytes(tar_of([(name, change(name, data)) for name, data in members], fmt=tarfile.PAX_FORMAT))


def with_members(name: str, data: bytes) -> bytes:
    """A sample's JSON with its `member`, as every sample's will say (the keys here are plain:
    the member is the key and `.JPEG`)."""
    if not name.endswith(".json"):
        return data
    return json.dumps({**json.loads(data), "member": name[:-len(".json")] + ".JPEG"}, sort_keys=True).encode()


# ------------------------------------------------------------------------------ clean outputs


@pytest.mark.parametrize("fmt", ["parquet", "webdataset"])
@pytest.mark.parametrize("whole", [True, False], ids=["folder", "one-shard"])
def test_a_clean_output_passes_every_level(built, fmt, whole):
    """Before: a folder was 'not a file' (exit 2), a shard 'not a gzip file' at '1 px' (exit 1)."""
    _, _, dist = built
    folder = dist / FOLDERS[fmt]
    target = folder if whole else folder / shards(dist, fmt, "val")[0]
    code, report = verify(target)
    assert code == 0, json.dumps(report, indent=1)
    assert report["format"] == fmt and report["size"] == 64
    assert [lv["level"] for lv in report["levels"]] == ["identity", "structure", "members", "images"]
    assert level(report, "images")["expected_shortest_side"] == 64
    listed = shards(dist, fmt) if whole else [target.name]
    assert level(report, "identity")["shards"] == len(listed)
    rows = level(report, "structure")["rows"]
    assert rows == (50 if whole else _rows_of(target))  # the sample: 40 train and 10 val images, whatever the shards
    assert level(report, "members")["build_list"]["identical"] == rows  # every row says its member


def _rows_of(shard: Path) -> int:
    """The rows of one shard, read here independently of verify."""
    if shard.suffix == ".parquet":
        import pyarrow.parquet as pq
        return pq.ParquetFile(shard).metadata.num_rows
    with tarfile.open(shard) as tar:
        return sum(1 for name in tar.getnames() if name.endswith(".jpg"))


def test_the_text_report_reads_like_a_tgz_one(built):
    _, _, dist = built
    r = run_cli("verify", dist / FOLDERS["parquet"], "-q", "-j", "2", timeout=TIMEOUT)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"verify {dist / FOLDERS['parquet']}: parquet shards of {STEM}, ")
    assert lines[0].endswith(", 64 px")
    assert [ln.split()[1] for ln in lines if ln.startswith("PASS")] == ["identity", "structure", "members", "images"]
    assert "as the report counts them; every label its class's" in r.stdout
    assert lines[-1] == "passed: 4 levels"


def test_level_5_regenerates_every_parquet_row(built):
    root, manifest_path, dist = built
    code, report = verify(dist / FOLDERS["parquet"], "--imagenet", root, "--manifest", manifest_path,
                          "--recipe-sample", "0")
    assert code == 0, json.dumps(report, indent=1)
    assert level(report, "source")["compared"] == 50 and level(report, "source")["identical"] == 50


# ------------------------------------------------------------------------------ changed outputs


def test_a_flipped_byte_in_a_parquet_image_names_its_member(out):
    shard = f"{FOLDERS['parquet']}/{shards(out, 'parquet', 'val')[0]}"
    row = pq.read_table(out / shard, columns=["image"]).column("image")[0].as_py()
    data = bytearray((out / shard).read_bytes())
    at = data.find(row["bytes"])
    assert at > 0 and data.find(row["bytes"], at + 1) < 0
    data[at + len(row["bytes"]) // 2] ^= 0x10
    (out / shard).write_bytes(bytes(data))
    relist(out, shard)
    code, report = verify(out / FOLDERS["parquet"])
    assert code == 1 and "members" in failed(report) and "identity" not in failed(report), failed(report)
    [problem, provenance] = level(report, "members")["problems"]
    named = f"{shard.split('/')[1]}/{row['path']}"
    assert problem == f"against {STEM}.members.sha256: 1 members differ: {named}", problem
    # and its row's own provenance says other bytes
    assert provenance.startswith(f"1 rows whose provenance is not their own image's: {named} (member_sha256 '")


def test_a_flipped_byte_in_a_webdataset_image_names_its_member(out):
    """With `member` in every sample's JSON (as the writer is to put it), a changed image is named."""
    shard = f"{FOLDERS['webdataset']}/{shards(out, 'webdataset', 'val')[0]}"
    rewrite_wds(out / shard, with_members)
    relist(out, shard)
    code, report = verify(out / FOLDERS["webdataset"])
    assert code == 0, json.dumps(report, indent=1)
    assert level(report, "members")["build_list"]["identical"] == 50  # every sample says its member

    changed = []

    def flip(name: str, data: bytes) -> bytes:
        if name.endswith(".jpg") and not changed:
            changed.append(name[:-len(".jpg")] + ".JPEG")
            data = bytearray(data)
            data[len(data) // 2] ^= 0x10
        return bytes(data)

    rewrite_wds(out / shard, flip)
    relist(out, shard)
    code, report = verify(out / FOLDERS["webdataset"])
    assert code == 1 and "members" in failed(report) and "identity" not in failed(report), failed(report)
    [problem, provenance] = level(report, "members")["problems"]
    named = f"{shard.split('/')[1]}/{changed[0]}"
    assert problem == f"against {STEM}.members.sha256: 1 members differ: {named}"
    assert provenance.startswith(f"1 rows whose provenance is not their own image's: {named} (member_sha256 '")


@pytest.mark.parametrize("fmt", ["parquet", "webdataset"])
def test_a_missing_shard_fails_identity_structure_and_members(out, fmt):
    gone = shards(out, fmt, "train")[-1]
    (out / FOLDERS[fmt] / gone).unlink()
    code, report = verify(out / FOLDERS[fmt])
    assert code == 1
    assert level(report, "identity")["problems"] == [f"1 shards listed but not in {FOLDERS[fmt]}/: {gone}"]
    structure = " ".join(level(report, "structure")["problems"])
    assert "split train: shard numbers missing" in structure and gone in structure
    assert "rows in all, the report counts 50 images" in structure
    if fmt == "parquet":
        assert "members missing" in " ".join(level(report, "members")["problems"])


def test_a_wrong_parquet_label_fails_structure(out):
    shard = f"{FOLDERS['parquet']}/{shards(out, 'parquet', 'val')[0]}"
    table = pq.read_table(out / shard)
    labels = table.column("label").to_pylist()
    labels[0] = (labels[0] + 1) % 10
    table = table.set_column(table.schema.get_field_index("label"), "label", pa.array(labels, pa.int64()))
    pq.write_table(table, out / shard, compression="none", use_dictionary=False, write_statistics=False)
    relist(out, shard)
    code, report = verify(out / FOLDERS["parquet"])
    assert code == 1 and failed(report) == ["structure"], failed(report)
    [problem] = level(report, "structure")["problems"]
    member = table.column("image")[0].as_py()["path"]
    wnid = table.column("wnid")[0].as_py()
    assert problem == (f"1 rows whose labels are not their class's: {shard.split('/')[1]}/{member} "
                       f"(label {labels[0]} where {wnid} is class {(labels[0] - 1) % 10})"), problem


def test_a_webdataset_cls_that_is_not_its_json_label_fails_structure(out):
    shard = f"{FOLDERS['webdataset']}/{shards(out, 'webdataset', 'val')[0]}"
    changed = []

    def cls(name: str, data: bytes) -> bytes:
        if name.endswith(".cls") and not changed:
            changed.append(name[:-len(".cls")] + ".JPEG")  # (the sample's member, as its JSON says)
            return str((int(data) + 3) % 10).encode()
        return data

    rewrite_wds(out / shard, cls)
    relist(out, shard)
    code, report = verify(out / FOLDERS["webdataset"])
    assert code == 1 and failed(report) == ["structure"], failed(report)
    [problem] = level(report, "structure")["problems"]
    assert problem.startswith(f"1 rows whose labels are not their class's: {shard.split('/')[1]}/{changed[0]} "
                              "(.cls "), problem


# ------------------------------------------------------------------------------ hostile folders


def _symlink(folder: Path, name: str, other: str) -> None:
    (folder / name).unlink()
    (folder / name).symlink_to(other)


def _fifo(folder: Path, name: str, other: str) -> None:
    (folder / name).unlink()
    os.mkfifo(folder / name)


def _extra(folder: Path, name: str, other: str) -> None:
    shutil.copy(folder / other, folder / "train-00009-of-00010.parquet")


@pytest.mark.parametrize("change,problem", [
    (_symlink, "1 shards not read: {name} (a symbolic link, not a shard the build wrote)"),
    (_fifo, "1 shards not read: {name} (a named pipe, not a shard the build wrote)"),
    (_extra, "1 files in {folder}/ that no sums line or report lists (not read): train-00009-of-00010.parquet"),
], ids=["symlink", "fifo", "extra"])
def test_odd_files_in_the_folder_fail_identity(out, change, problem):
    folder = out / FOLDERS["parquet"]
    name, other = shards(out, "parquet", "val")[0], shards(out, "parquet", "train")[0]
    change(folder, name, other)
    code, report = verify(folder)
    assert code == 1
    assert problem.format(name=name, folder=folder.name) in level(report, "identity")["problems"], report["levels"][0]


def test_a_shard_of_another_build_fails_members_and_images(out, built, tmp_path):
    """A shard of the 32 px build in place of one of the 64 px build, its sums lines and report
    entry made to match: its images are not the build's."""
    root, manifest_path, _ = built
    other = tmp_path / "other"
    r = run_cli("--imagenet", root, "--manifest", manifest_path, "--size", "32", "--out", other, "-q", "-j", "2",
                "--format", "parquet", "--shard-size", "40K")
    assert r.returncode == 0, r.stderr
    name = shards(out, "parquet", "val")[0]
    shutil.copy(other / "imagenette2-sample-32-parquet" / name, out / FOLDERS["parquet"] / name)
    relist(out, f"{FOLDERS['parquet']}/{name}")
    code, report = verify(out / FOLDERS["parquet"])
    assert code == 1 and failed(report) == ["members", "images"], failed(report)
    rows = _rows_of(out / FOLDERS["parquet"] / name)
    assert f"{rows} members differ" in level(report, "members")["problems"][0]
    assert f"{rows} members whose shortest side is not 64" in level(report, "images")["problems"][0]


def _declare_row_group_bytes(path: Path, declared: int) -> None:
    """The footer's first row group made to declare `declared` bytes (thrift's compact encoding:
    field 2 of RowGroup, total_byte_size, then field 3, num_rows, each a zigzag varint)."""
    def varint(n: int) -> bytes:
        out = bytearray()
        while n > 0x7F:
            out.append(n & 0x7F | 0x80)
            n >>= 7
        return bytes(out + bytes([n]))

    data = path.read_bytes()
    rg = pq.ParquetFile(path).metadata.row_group(0)
    n = int.from_bytes(data[-8:-4], "little")
    footer = data[-8 - n:-8]
    old = b"\x16" + varint(rg.total_byte_size * 2) + b"\x16" + varint(rg.num_rows * 2)
    assert footer.count(old) == 1
    footer = footer.replace(old, b"\x16" + varint(declared * 2) + b"\x16" + varint(rg.num_rows * 2))
    path.write_bytes(data[:-8 - n] + footer + len(footer).to_bytes(4, "little") + b"PAR1")
    assert pq.ParquetFile(path).metadata.row_group(0).total_byte_size == declared


def _garbage_footer(path: Path) -> None:
    data = bytearray(path.read_bytes())
    n = int.from_bytes(data[-8:-4], "little")
    data[-8 - n:-8] = b"\xff" * n
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("change,problem", [
    (lambda p: _declare_row_group_bytes(p, 1 << 40),
     "row group 0 declares 1,099,511,627,776 bytes, more than the 134,217,728 verify reads of one"),
    (lambda p: p.write_bytes(p.read_bytes()[:-100]), "not a parquet file this tool writes (no PAR1 at its end: "
                                                     "truncated?)"),
    (lambda p: p.write_bytes(p.read_bytes()[:-8] + (1 << 30).to_bytes(4, "little") + b"PAR1"),
     "its footer declares 1,073,741,824 bytes, more than the file holds"),
    (_garbage_footer, "not a readable parquet file: "),
], ids=["huge-row-group", "truncated", "huge-footer", "garbage-footer"])
def test_a_hostile_parquet_shard_is_one_line_in_bounded_memory(out, tmp_path, change, problem):
    shard = f"{FOLDERS['parquet']}/{shards(out, 'parquet', 'val')[0]}"
    change(out / shard)
    relist(out, shard)
    r, peak = measured(tmp_path, "verify", out / FOLDERS["parquet"], "-q", "-j", "2", "--json")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    report = json.loads(r.stdout)
    assert "identity" not in failed(report)
    [line] = level(report, "structure")["problems"]
    assert line.startswith(f"1 shards that do not read whole: {shard.split('/')[1]} ({problem}"), line
    assert "\n" not in line and len(line) < 600
    assert peak < 400, f"peak RSS {peak} MiB"


def test_a_webdataset_shard_with_unsafe_names_fails_structure(out):
    shard = f"{FOLDERS['webdataset']}/{shards(out, 'webdataset', 'val')[0]}"
    (out / shard).write_bytes(tar_of([("../evil.jpg", b"x"), ("/etc/x.jpg", b"x"), ("val/a/b.cls", b"0")]))
    with tarfile.open(out / shard, "a") as tar:
        link = tarfile.TarInfo("val/link.jpg")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    relist(out, shard)
    code, report = verify(out / FOLDERS["webdataset"])
    assert code == 1
    problems = level(report, "structure")["problems"]
    unsafe = next(p for p in problems if "unsafe members" in p)
    assert unsafe.startswith("3 unsafe members (never extract these shards): ") and "symlink -> /etc/passwd" in unsafe


def test_a_gzip_or_bzip2_stream_is_not_inflated_as_a_plain_shard(out):
    """tarfile's `r|*` would inflate any compression; a shard is read as a plain tar only."""
    shard = f"{FOLDERS['webdataset']}/{shards(out, 'webdataset', 'val')[0]}"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:bz2") as tar:
        tar.addfile(tarfile.TarInfo("val/a.cls"), io.BytesIO(b""))
    (out / shard).write_bytes(buf.getvalue())
    relist(out, shard)
    code, report = verify(out / shard)
    assert code == 1
    assert "not a valid tar stream: " in level(report, "structure")["problems"][0]


@pytest.mark.parametrize("name", ["dist", "data", "imagenette2-sample-64-parquet/sub"])
def test_a_folder_of_another_kind_is_a_one_line_error(out, name):
    folder = out.parent / name if name != "dist" else out
    folder.mkdir(parents=True, exist_ok=True)
    r = run_cli("verify", folder, "-q", timeout=TIMEOUT)
    fk.one_line_error(r, 2, "a folder, not one of shards", "<stem>-parquet/ or <stem>-wds/")


def test_a_shard_file_outside_a_shard_folder_is_a_one_line_error(out):
    loose = out / "loose.parquet"
    shutil.copy(out / FOLDERS["parquet"] / shards(out, "parquet", "val")[0], loose)
    r = run_cli("verify", loose, "-q", timeout=TIMEOUT)
    fk.one_line_error(r, 2, "a .parquet file outside a <stem>-parquet/ folder")


def test_the_member_list_of_a_tgz_of_another_recipe_is_not_held_against_the_shards(built, tmp_path):
    """A .tgz kept from an earlier build, beside parquet shards built later at another quality: its
    member list lists other bytes, and says so in a note rather than failing every row."""
    root, manifest_path, _ = built
    common = ("--imagenet", root, "--manifest", manifest_path, "--size", "64", "--out", tmp_path, "-q", "-j", "2")
    assert run_cli(*common, "--format", "tgz").returncode == 0
    assert run_cli(*common, "--format", "parquet", "--quality", "90").returncode == 0
    code, report = verify(tmp_path / FOLDERS["parquet"])
    assert code == 0, json.dumps(report, indent=1)
    assert level(report, "members")["notes"] == [
        f"{STEM}.members.sha256 lists the .tgz of another build (its options.recipe differ): the images are not "
        "compared with it"]
    assert report["recipe"]["quality"] == 90  # the shards' own recipe, not the kept archive's
