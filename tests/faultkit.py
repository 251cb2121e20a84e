"""Helpers for the fault tests (scenarios/test_faults, test_interrupt, test_hostile_build, ...; the
worker's and readers' unit tests): bad images made on the spot, label files and file lists, copies
of the sample ImageNet to damage, and the checks every failed or interrupted build must pass
(one-line error, nothing incomplete or stale under a final name)."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

FINAL_NAMES = re.compile(r"^(SHA256SUMS|MD5SUMS|.+\.tgz|.+\.json|.+\.members\.sha256|.+\.provenance\.csv|.+\.README\.md"
                         r"|.+\.preview\.png)$")
DOCUMENT = re.compile(r"^(?P<stem>.+)\.(README\.md|preview\.png)$")  # an archive's card and contact sheet
PROVENANCE_SUFFIX = ".provenance.csv"
MEMBERS_SUFFIX = ".members.sha256"
PARTIAL = re.compile(r"^\..+\.partial-.+-[0-9]+$")
LOCK = re.compile(r"^\..+\.lock$")  # a build's locks (safewrite.py); left only by a kill -9, harmless
CACHE = ".imagenette-cache"
TEN_CLASSES = ["n01440764", "n02102040", "n02979186", "n03000684", "n03028079", "n03394916",
               "n03417042", "n03425413", "n03445777", "n03888257"]  # imagenette2's


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def copy_imagenet(root: Path, dest: Path) -> Path:
    shutil.copytree(root, dest, symlinks=True)
    return dest


def class_files(root: Path, split: str, wnid: str) -> list[Path]:
    return sorted((root / split / wnid).iterdir())


# ------------------------------------------------------------------------------ bad images


def _pixels(w: int = 300, h: int = 200) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(x * 255 // w), (y * 255 // h), ((x + y) * 255 // (w + h))], axis=-1).astype(np.uint8)


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def good_jpeg(w: int = 300, h: int = 200) -> bytes:
    return _save(Image.fromarray(_pixels(w, h), "RGB"), "JPEG", quality=90)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A 1x1 PNG whose header claims width x height (400 Mpx: over twice Pillow's limit)."""
    data = _save(Image.new("L", (1, 1)), "PNG")
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return data[:8] + png_chunk(b"IHDR", ihdr) + data[8 + 25:]


def thin_jpeg(width: int = 2, height: int = 65_000) -> bytes:
    """A valid JPEG of one colour, `width` x `height` (2 x 65,000: 16 kB), made by Pillow."""
    return _save(Image.new("RGB", (width, height), (120, 30, 200)), "JPEG")


def declared_jpeg(width: int, height: int, progressive: bool = False) -> bytes:
    """A 16 x 16 JPEG whose frame header (SOF) declares `width` x `height`: a few hundred bytes that
    a decoder takes for that size (the missing data decodes as grey)."""
    data = bytearray(_save(Image.new("RGB", (16, 16), (200, 100, 50)), "JPEG", progressive=progressive))
    sof = data.find(b"\xff\xc2" if progressive else b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def exif_rotated_jpeg() -> bytes:
    """300x200 as stored, with EXIF orientation 6 (a viewer shows it 200x300, turned)."""
    img = Image.fromarray(_pixels(), "RGB")
    exif = Image.Exif()
    exif[0x0112] = 6
    return _save(img, "JPEG", quality=90, exif=exif.tobytes())


def sixteen_bit_png() -> bytes:
    arr = (np.arange(200 * 300, dtype=np.uint32).reshape(200, 300) * 7 % 65536).astype(np.uint16)
    return _save(Image.fromarray(arr), "PNG")


# kind: (bytes, what the build does with it). Converted kinds give a JPEG of this mode.
CONVERTED = {
    "png_named_jpeg": (lambda: _save(Image.fromarray(_pixels(), "RGB"), "PNG"), "RGB"),
    "cmyk": (lambda: _save(Image.fromarray(_pixels(), "RGB").convert("CMYK"), "JPEG", quality=90), "RGB"),
    "sixteen_bit": (sixteen_bit_png, "L"),
    "palette": (lambda: _save(Image.fromarray(_pixels(), "RGB").convert("P"), "PNG"), "RGB"),
    "palette_transparent": (lambda: _save(Image.fromarray(_pixels(), "RGB").convert("P"), "PNG", transparency=0), "RGB"),
    "alpha": (lambda: _save(Image.fromarray(_pixels(), "RGB").convert("RGBA"), "PNG"), "RGB"),
    "exif_rotated": (exif_rotated_jpeg, "RGB"),
}

# kind: (bytes, a phrase the error must contain; for the resized and the full-size path)
BROKEN = {
    "truncated": (lambda: good_jpeg()[: len(good_jpeg()) * 2 // 3], ("truncated", "truncated")),
    "cut_before_eoi": (lambda: good_jpeg()[:-2], ("truncated", "truncated")),
    "zero_bytes": (lambda: b"", ("empty file (0 bytes)", "empty file (0 bytes)")),
    "not_an_image": (lambda: b"<html>404 not found</html>\n", ("not an image", "not an image")),
    "truncated_png": (lambda: _save(Image.fromarray(_pixels(), "RGB"), "PNG")[:-40], ("truncated", "truncated")),
    "bomb": (bomb_png, ("decompression bomb", "decompression bomb")),
}
# The rarer formats Pillow reads, named .JPEG and cut to two thirds (full-size builds copied them
# while resized builds refused them).
for _fmt in ("GIF", "TIFF", "BMP", "PCX", "TGA"):
    BROKEN[f"truncated_{_fmt.lower()}"] = (
        lambda fmt=_fmt: (lambda d: d[: len(d) * 2 // 3])(_save(Image.fromarray(_pixels(), "RGB"), fmt)),
        ("truncated", "truncated"))


def install(path: Path, kind: str) -> None:
    """Replace the image at `path` with one of the kinds above (or a symlink loop)."""
    path.unlink()
    if kind == "symlink_loop":
        path.symlink_to(path.name)
        return
    maker = (CONVERTED.get(kind) or BROKEN[kind])[0]
    path.write_bytes(maker())


# ------------------------------------------------------------------------------ label files and file lists


def devkit_ground_truth(per_class: int = 50, lines: int = 50_000) -> str:
    """The devkit's ILSVRC2012_validation_ground_truth.txt: one devkit class ID a line, 50 a class;
    `per_class` other than 50 moves one image from one class to another, `lines` cuts it short."""
    ids = [1 + (n % 1000) for n in range(lines)]
    if per_class != 50:
        ids[0] = ids[1]  # one class 51 times, another 49
    return "".join(f"{i}\n" for i in ids)


def big_list_manifest(folder: Path, rows: int) -> Path:
    """A `files` manifest over 10 classes whose list has `rows` valid rows of the published list's
    7 columns (about 94 bytes a row)."""
    wnids = TEN_CLASSES
    folder.mkdir()
    with open(folder / "list.csv", "w") as f:
        f.write("path,noisy_labels_0,noisy_labels_1,noisy_labels_5,noisy_labels_25,noisy_labels_50,is_valid\n")
        for i in range(rows):
            w = wnids[i % len(wnids)]
            f.write(f"train/{w}/{w}_{i}.JPEG,{w},{w},{w},{w},{w},False\n")
    toml = folder / "big.toml"
    toml.write_text('name = "big"\nstem = "big"\n[split]\npolicy = "files"\nlist = "list.csv"\n'
                    + "".join(f'[[classes]]\nwnid = "{w}"\n' for w in wnids))
    return toml


# ------------------------------------------------------------------------------ running the CLI


def default_sigint() -> None:
    """A subprocess's `preexec_fn`: SIGINT back to its default action. A test run started in the
    background of a non-interactive shell (`pytest &`, nohup) has SIGINT ignored, and every child
    would inherit that, so a test's Ctrl-C would do nothing."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def limit_file_size(limit: int):
    """A subprocess's `preexec_fn`: no file may grow past `limit` bytes (a full disk, for writes)."""
    def preexec():
        import resource
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


def mount_small_tmpfs(mnt: Path, size: str) -> None:
    """A tmpfs of `size` ("256k") at the new folder `mnt` (a real ENOSPC); skips the test where it
    cannot be mounted (needs root with CAP_SYS_ADMIN). The caller unmounts it."""
    import pytest

    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)")


def cli_command(*args) -> list[str]:
    return [sys.executable, "-m", "imagenette_build.cli", *map(str, args)]


def paused_cli_command(point: str, seconds: float, *args) -> list[str]:
    """The command line stopping for `seconds` at `point` (tests/paused_cli.py)."""
    return [sys.executable, str(Path(__file__).with_name("paused_cli.py")), point, str(seconds), *map(str, args)]


def drop_root_file_access() -> list[str] | None:
    """A command prefix that runs a child without the capabilities that let root ignore file
    permissions (so chmod 000 means something), or None when that cannot be done here."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if not setpriv:
        return None
    prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-dac_override,-dac_read_search"]
    with tempfile.TemporaryDirectory() as d:
        locked = Path(d, "locked")
        locked.write_bytes(b"x")
        locked.chmod(0)
        probe = subprocess.run([*prefix, sys.executable, "-c", f"open({str(locked)!r}, 'rb')"], capture_output=True)
    return prefix if probe.returncode != 0 and b"PermissionError" in probe.stderr else None


def one_line_error(r, code: int, *needles: str) -> str:
    err = "\n".join(ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith("test-pause"))
    assert r.returncode == code, (r.returncode, r.stderr)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("imagenette-build: error:"), r.stderr
    assert "Traceback" not in r.stderr
    for n in needles:  # case aside: strerror says "Permission denied", a worker "permission denied"
        assert n.lower() in lines[0].lower(), (n, lines[0])
    return lines[0]


# ------------------------------------------------------------------------------ output folder checks


def parse_sums(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    out = {}
    for line in path.read_text().splitlines():
        digest, name = line.split("  ", 1)
        out[name] = digest
    return out


def archive_is_complete(path: Path) -> bool:
    """The whole gzip stream inflates with a good CRC and the tar inside lists to its end."""
    try:
        with gzip.open(path) as f:
            data = f.read()
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.getmembers()
        return True
    except (OSError, EOFError, tarfile.TarError, zlib.error):
        return False


def assert_consistent(out: Path, allow_partials: bool = False) -> dict[str, str]:
    """Every file under a final name is complete and current: each archive is whole, every sums
    line and report matches the archive beside it, nothing else is there. Returns {archive: sha256}."""
    if not out.exists():
        return {}
    names = {n for n in os.listdir(out) if n != CACHE and not LOCK.match(n)}
    partials = {n for n in names if PARTIAL.match(n)}
    assert allow_partials or not partials, partials
    finals = names - partials
    assert all(FINAL_NAMES.match(n) for n in finals), finals
    archives = {n: sha256(out / n) for n in finals if n.endswith(".tgz")}
    for name in archives:
        assert archive_is_complete(out / name), name
    documents = {n: sha256(out / n) for n in finals if DOCUMENT.match(n)}
    for name in documents:  # never beside an archive it does not describe
        assert DOCUMENT.match(name)["stem"] + ".tgz" in archives, (name, "a document without its archive")
    provenance = {n: sha256(out / n) for n in finals if n.endswith(PROVENANCE_SUFFIX)}
    sha_lines, md5_lines = parse_sums(out / "SHA256SUMS"), parse_sums(out / "MD5SUMS")
    for name, digest in sha_lines.items():
        assert {**archives, **documents, **provenance}.get(name) == digest, (name, "SHA256SUMS line is stale")
    for name, digest in md5_lines.items():
        assert hashlib.md5((out / name).read_bytes()).hexdigest() == digest, (name, "MD5SUMS line is stale")
    for n in finals:
        if n.endswith(".json"):
            report = json.loads((out / n).read_text())
            assert archives.get(report["archive"]) == report["sha256"], (n, "report is stale")
            for f in report["outputs"]["tgz"]["files"][1:]:
                assert {**documents, **provenance}.get(f["path"]) == f["sha256"], (n, f["path"], "report is stale")
            assert sha256(out / report["members_sha256"]["file"]) == report["members_sha256"]["sha256"], n
            assert sha256(out / report["provenance"]["file"]) == report["provenance"]["sha256"], n
        if n.endswith(MEMBERS_SUFFIX):
            archive = out / (n[: -len(MEMBERS_SUFFIX)] + ".tgz")
            assert member_digests(archive) == parse_member_list(out / n), (n, "member list is stale")
        if n.endswith(PROVENANCE_SUFFIX):  # never beside an archive it does not describe
            archive = out / (n[: -len(PROVENANCE_SUFFIX)] + ".tgz")
            images = {m: d for m, d in member_digests(archive).items() if m.count("/") == 2}
            assert images == parse_provenance(out / n), (n, "provenance is stale")
    return archives


def member_digests(archive: Path) -> dict[str, str]:
    """{path below the top folder: sha256} of every file member."""
    with tarfile.open(archive) as tar:
        return {m.name.partition("/")[2]: hashlib.sha256(tar.extractfile(m).read()).hexdigest()
                for m in tar if m.isfile()}


def parse_provenance(path: Path) -> dict[str, str]:
    """{member: member_sha256} of a provenance CSV."""
    return {r["member"]: r["member_sha256"] for r in csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")))}


def parse_member_list(path: Path) -> dict[str, str]:
    return {line[66:]: line[:64] for line in path.read_text().splitlines()}
