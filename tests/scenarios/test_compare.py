"""`compare`: two archives (or folders, or member lists) hold the same images, whatever their tar
headers, member order and gzip; a changed byte, a missing and an extra member are named; hostile
archives end in one line or a difference, in bounded memory."""

from __future__ import annotations

import io
import json
import random
import tarfile
from pathlib import Path

import imagenette_build as ib

from .. import faultkit as fk
from ..conftest import run_cli
from .test_hostile_verify import END, GIB, GzipFile, header, measured, tar_of

STEM = "imagenette2-sample-160"


def retar(src: Path, dest: Path, edit=lambda members: members) -> Path:
    """`src`'s members re-packed as another tool would: shuffled order, other headers and gzip
    level, a `./` prefix; `edit` may change the (name, bytes) list first."""
    with tarfile.open(src) as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers() if m.isfile()]
    members = edit(members)
    random.Random(7).shuffle(members)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(f"./{name}")
            info.size, info.mtime, info.mode, info.uname = len(data), 1_612_345_678, 0o600, "jeremy"
            tar.addfile(info, io.BytesIO(data))
    import gzip
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(gzip.compress(buf.getvalue(), compresslevel=9, mtime=12345))
    return dest


def test_the_same_images_in_another_order_and_format_are_the_same(built, tmp_path):
    _, _, out = built
    ours = out / f"{STEM}.tgz"
    theirs = retar(ours, tmp_path / "published" / f"{STEM}.tgz")
    assert fk.sha256(ours) != fk.sha256(theirs)
    r = run_cli("compare", theirs, ours, "--json", "-q")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    images = doc["a"]["images"]
    assert doc["same_images"] and doc["identical"] == images == doc["b"]["images"] > 0
    assert doc["differ"] == doc["only_in_a"] == doc["only_in_b"] == 0
    r = run_cli("compare", theirs, ours, "-q")
    assert r.returncode == 0 and r.stdout.strip().endswith("SAME IMAGES")
    assert f"identical: {images:,} of the {images:,} images in both" in r.stdout
    # an extracted folder and the build's member list are sides too
    folder = Path(ib.extract(ours, into=tmp_path / "data")["folder"])
    assert ib.compare(folder, theirs)["same_images"]
    assert ib.compare(out / f"{STEM}.members.sha256", folder)["same_images"]


def test_a_changed_byte_a_missing_and_an_extra_member_are_named(built, tmp_path):
    _, _, out = built
    ours = out / f"{STEM}.tgz"
    names = []

    def edit(members):
        images = [i for i, (n, _) in enumerate(members) if n.count("/") == 3]
        changed, dropped = members[images[0]][0], members[images[1]][0]
        data = bytearray(members[images[0]][1])
        data[len(data) // 2] ^= 1
        members[images[0]] = (changed, bytes(data))
        names.extend([changed, dropped])
        extra = f"{STEM}/train/n01440764/n01440764_999999.JPEG"
        return [m for m in members if m[0] != dropped] + [(extra, fk.good_jpeg())]

    theirs = retar(ours, tmp_path / f"{STEM}.tgz", edit)
    r = run_cli("compare", ours, theirs, "-q")
    assert r.returncode == 1, r.stderr
    changed, dropped = (n.split("/", 1)[1] for n in names)
    assert f"differ: 1: {changed}" in r.stdout and f"only in A: 1: {dropped}" in r.stdout
    assert "only in B: 1: train/n01440764/n01440764_999999.JPEG" in r.stdout and r.stdout.strip().endswith("DIFFERENT")
    doc = ib.compare(ours, theirs)
    assert doc["differ_first"] == [changed] and doc["only_in_a_first"] == [dropped]
    assert doc["identical"] == doc["a"]["images"] - 2


def test_hostile_archives_give_a_difference_or_one_line(tmp_path):
    good = GzipFile().add(tar_of([("d/train/n01440764/a.JPEG", b"a")]) + END).write(tmp_path / "good.tgz")
    truncated = tmp_path / "truncated.tgz"
    truncated.write_bytes(good.read_bytes()[:-9])
    unsafe = GzipFile().add(tar_of([("d/train/n01440764/a.JPEG", b"a"), ("d//etc/passwd", b"x")]) + END
                            ).write(tmp_path / "unsafe.tgz")
    for other, needle in ((truncated, "could not be read whole"), (unsafe, "an empty part")):
        r = run_cli("compare", good, other, "-q", timeout=120)
        assert r.returncode == 1 and needle in r.stdout and "Traceback" not in r.stderr, r.stdout + r.stderr
    r = run_cli("compare", good, tmp_path / "missing.tgz")
    fk.one_line_error(r, 2, "missing.tgz: no such file")
    r = run_cli("compare", good, "/dev/zero", timeout=120)
    fk.one_line_error(r, 2, "not a regular file")


def test_a_member_declaring_a_gib_is_compared_in_bounded_memory(tmp_path):
    bomb = GzipFile().add(header("d/train/n01440764/big.JPEG", size=GIB)).zeros(256).add(END).write(tmp_path / "b.tgz")
    good = GzipFile().add(tar_of([("d/train/n01440764/a.JPEG", b"a")]) + END).write(tmp_path / "good.tgz")
    r, peak = measured(tmp_path, "compare", good, bomb, "-q")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert peak < 300, peak  # MiB: the member is never read
