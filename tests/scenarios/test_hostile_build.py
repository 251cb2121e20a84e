"""Hostile and odd input on the build side: files that are not regular files or are far
too large, damaged cache packs, odd file names, a disk that fills at commit, symlinked root files,
bad SOURCE_DATE_EPOCH, unreadable sums files, huge file lists, too many --jobs, and two builds into
one output folder at once. Each ends in a correct archive or a one-line error naming the file,
within a bounded time and memory. (Truncated images of the rarer formats are among
faultkit.BROKEN, tested in test_faults.py and unit/test_worker.py.)"""

from __future__ import annotations

import io
import json
import os
import resource
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from .. import faultkit as fk

TIMEOUT = 60  # seconds: a build of the 50-image sample takes a few; a hang must fail, not wait forever


def _limited(address_space: int | None = None):
    """A subprocess's `preexec_fn`: SIGINT's default action, and at most `address_space` bytes of
    virtual memory (so that a read without a bound fails in the child instead of filling the machine)."""
    def preexec():
        fk.default_sigint()
        if address_space is not None:
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    return preexec


def cli(*args, env=None, address_space: int | None = None, timeout: float = TIMEOUT):
    return subprocess.run(fk.cli_command(*args), capture_output=True, text=True, env=env, timeout=timeout,
                          preexec_fn=_limited(address_space))


# ------------------------------------------------------------------------------ source images: regular files, bounded


def _victim(copy: Path) -> Path:
    return fk.class_files(copy, "train", "n02102040")[0]


@pytest.mark.parametrize("kind,phrase", [
    ("fifo", "not a regular file: a named pipe"),
    ("dev_zero", "not a regular file: a character device"),
    ("huge", "314,572,800 bytes, more than a source image may have (268,435,456)"),
])
def test_listed_image_that_is_a_fifo_a_device_or_huge_is_an_error_not_a_hang(sample, tmp_path, kind, phrase):
    """A FIFO as a listed image blocked the build forever (in the prefetch thread's open, then in
    the worker's); a symlink to /dev/zero was read until memory ran out; a 300 MB sparse file was
    read whole. Each is now an error for that image, naming the file and saying why."""
    root, manifest_path = sample
    copy = fk.copy_imagenet(root, tmp_path / "imagenet")
    victim = _victim(copy)
    victim.unlink()
    if kind == "fifo":
        os.mkfifo(victim)
    elif kind == "dev_zero":
        victim.symlink_to("/dev/zero")
    else:
        with open(victim, "wb") as f:
            f.truncate(300 << 20)
    out = tmp_path / "out"
    for size in ("32", "full"):
        r = cli("--imagenet", copy, "--manifest", manifest_path, "--size", size, "--out", out, "-q",
                address_space=3 << 30)
        fk.one_line_error(r, 1, "1 source images could not be read", f"{victim}: {phrase}")
    r = cli("--imagenet", copy, "--manifest", manifest_path, "--size", "32", "--out", out, "-q", "--skip-broken",
            "--json", address_space=3 << 30)
    assert r.returncode == 0, r.stderr
    assert [s["source"] for s in json.loads(r.stdout)["skipped"]] == [str(victim)]
    fk.assert_consistent(out)


# ------------------------------------------------------------------------------ cache faults are the cache's


def _flip_first_offset(pack: Path) -> None:
    """Set the top bit of the first index entry's record offset (a one-bit fault in the index)."""
    from imagenette_build.cache import _COUNT, MAGIC

    data = bytearray(pack.read_bytes())
    data[len(MAGIC) + _COUNT.size + 32 + 7] ^= 0x80
    pack.write_bytes(bytes(data))


@pytest.mark.parametrize("fault", ["offset_bit", "fifo_pack"])
def test_a_fault_in_a_cache_pack_remakes_the_image_and_blames_no_source(sample, tmp_path, fault):
    """A one-bit flip in a pack's index made f.seek raise OverflowError, which was reported as
    "1 source images could not be read" (and --skip-broken left a good image out). A FIFO among the
    packs hung the build. Now the entry counts as damaged (or the pack is dropped) and the image is
    made again: the same archive as without a cache."""
    root, manifest_path = sample
    out = tmp_path / "out"
    args = ["--imagenet", root, "--manifest", manifest_path, "--size", "32", "--batch-size", "8", "-q"]
    r = cli(*args, "--out", tmp_path / "clean", "--no-cache", "--json")
    assert r.returncode == 0, r.stderr
    clean = json.loads(r.stdout)["sha256"]
    r = cli(*args, "--out", out, "--keep-cache")
    assert r.returncode == 0, r.stderr
    packs = sorted((out / fk.CACHE / "packs").iterdir())
    if fault == "offset_bit":
        for pack in packs:
            _flip_first_offset(pack)
    else:
        os.mkfifo(out / fk.CACHE / "packs" / ("0" * 32 + ".pack"))
    for extra in ((), ("--skip-broken",)):
        r = cli(*args, "--out", out, "--json", "--keep-cache", *extra)
        assert r.returncode == 0, r.stderr
        report = json.loads(r.stdout)
        assert report["sha256"] == clean
        assert report["skipped"] == []
        if fault == "offset_bit":  # (the second run finds the copies the first one made again)
            assert report["cache"]["damaged"] == (len(packs) if not extra else 0)
        else:
            assert report["cache"]["hits"] == 50
    fk.assert_consistent(out)


# ------------------------------------------------------------------------------ a manifest's root files


def _manifest_with_root_file(tmp_path: Path, make) -> Path:
    """A one-class manifest with root file `notes.txt`, made by `make(path)`."""
    folder = tmp_path / "m"
    folder.mkdir()
    make(folder / "notes.txt")
    toml = folder / "one.toml"
    toml.write_text('name = "one"\nstem = "one"\nroot_files = ["notes.txt"]\n[split]\npolicy = "imagenet"\n'
                    '[[classes]]\nwnid = "n01440764"\n')
    return toml


@pytest.mark.parametrize("kind,phrase", [
    ("symlink_out", "is a symbolic link"),
    ("symlink_in", "is a symbolic link"),
    ("fifo", "not a regular file: a named pipe"),
    ("device", "is a symbolic link"),
])
def test_root_file_must_be_a_regular_file_in_the_manifests_folder(sample, tmp_path, kind, phrase):
    """A root file that was a symlink was followed (/etc/shadow was packed); a FIFO blocked even
    --dry-run forever. Each is a one-line error, exit 2, before anything is written."""
    root, _ = sample
    secret = tmp_path / "secret"
    secret.write_text("root:$6$not-for-the-archive\n")

    def make(path: Path) -> None:
        if kind == "symlink_out":
            path.symlink_to(secret)
        elif kind == "symlink_in":
            (path.parent / "real.txt").write_text("notes\n")
            path.symlink_to("real.txt")
        elif kind == "fifo":
            os.mkfifo(path)
        else:
            path.symlink_to("/dev/zero")

    toml = _manifest_with_root_file(tmp_path, make)
    out = tmp_path / "out"
    for extra in (("--dry-run",), ()):
        r = cli("--imagenet", root, "--manifest", toml, "--size", "32", "--out", out, "-q", *extra, timeout=60)
        fk.one_line_error(r, 2, f"{toml.parent / 'notes.txt'}: {phrase}")
    assert not out.exists()


# ------------------------------------------------------------------------------ SOURCE_DATE_EPOCH, sums files


@pytest.mark.parametrize("value", ["abc", "1.5", "-1", " 12", "\u00b2", "1e9", str(10 ** 20), str(8 ** 11)])
def test_bad_source_date_epoch_is_a_usage_error(sample, tmp_path, value):
    root, manifest_path = sample
    out = tmp_path / "out"
    r = cli("--imagenet", root, "--manifest", manifest_path, "--size", "8", "--out", out, "-q",
            env=dict(os.environ, SOURCE_DATE_EPOCH=value))
    fk.one_line_error(r, 2, "SOURCE_DATE_EPOCH=", "must be a whole number of seconds from 0 to 8589934591")
    assert not out.exists()


def test_largest_source_date_epoch_makes_an_archive_gnu_tar_reads(sample, tmp_path):
    root, manifest_path = sample
    out = tmp_path / "out"
    r = cli("--imagenet", root, "--manifest", manifest_path, "--size", "8", "--out", out, "-q",
            env=dict(os.environ, SOURCE_DATE_EPOCH=str(8 ** 11 - 1)))
    assert r.returncode == 0, r.stderr
    listed = subprocess.run(["tar", "-tvzf", out / "imagenette2-sample-8.tgz"], capture_output=True, text=True)
    assert listed.returncode == 0 and "2242-03-16" in listed.stdout, listed.stderr


def test_sums_file_that_is_not_utf8_is_a_one_line_error_in_build_and_verify(sample, tmp_path):
    root, manifest_path = sample
    out = tmp_path / "out"
    r = cli("--imagenet", root, "--manifest", manifest_path, "--size", "8", "--out", out, "-q")
    assert r.returncode == 0, r.stderr
    sums = out / "SHA256SUMS"
    sums.write_bytes(sums.read_bytes() + b"\xff\xfe  caf\xe9.tgz\n")
    r = cli("verify", out / "imagenette2-sample-8.tgz", "--manifest", manifest_path, "-q")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"{sums}: not a UTF-8 text file" in r.stdout
    r = cli("--imagenet", root, "--manifest", manifest_path, "--size", "8", "--out", out, "-q")
    fk.one_line_error(r, 1, f"{sums}: not a UTF-8 text file", "move the file away")


# ------------------------------------------------------------------------------ big file lists, --jobs


def test_file_list_with_an_endless_line_is_refused(tmp_path):
    toml = fk.big_list_manifest(tmp_path / "m", 10)
    with open(tmp_path / "m" / "list.csv", "a") as f:
        f.write("train/" + "x" * (1 << 20) + "\n")
    r = cli("--imagenet", tmp_path, "--manifest", toml, "--dry-run", "-q")
    fk.one_line_error(r, 2, f"{tmp_path / 'm' / 'list.csv'} line 12: longer than 65,536 characters")


def test_jobs_beyond_four_per_core_is_a_usage_error(sample, tmp_path):
    root, manifest_path = sample
    cores = len(os.sched_getaffinity(0))
    r = cli("--imagenet", root, "--manifest", manifest_path, "--jobs", str(4 * cores + 1), "--out", tmp_path / "o",
            "-q")
    fk.one_line_error(r, 2, "'--jobs'", f"{4 * cores + 1} is more than {4 * cores} (4 per core")
    assert not (tmp_path / "o").exists()
    r = cli("--imagenet", root, "--manifest", manifest_path, "--jobs", str(4 * cores), "--size", "8",
            "--out", tmp_path / "o", "-q")
    assert r.returncode == 0, r.stderr


# ------------------------------------------------------------------------------ file names in noisy_<name>.csv


def _two_class_manifest(tmp_path: Path) -> Path:
    """The imagenet split policy: the generated noisy_two.csv names every image found."""
    toml = tmp_path / "two.toml"
    toml.write_text('name = "two"\nstem = "two"\n[split]\npolicy = "imagenet"\n'
                    '[[classes]]\nwnid = "n01440764"\n[[classes]]\nwnid = "n02102040"\n')
    return toml


def test_a_file_name_with_a_comma_or_quote_is_one_quoted_row(sample, tmp_path):
    """Unquoted, `a,b.JPEG` gave its row an eighth column (and a name with a line break a second row)."""
    import csv

    root, _ = sample
    copy = fk.copy_imagenet(root, tmp_path / "imagenet")
    folder = copy / "train" / "n01440764"
    for odd in ('n01440764_1,2.JPEG', 'n01440764_"q".JPEG'):
        (folder / odd).write_bytes(fk.good_jpeg())
    out = tmp_path / "out"
    r = cli("--imagenet", copy, "--manifest", _two_class_manifest(tmp_path), "--size", "16", "--out", out, "-q",
            "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    with tarfile.open(out / "two-16.tgz") as tar:
        text = tar.extractfile("two-16/noisy_two.csv").read().decode()
        members = sorted(t.name.split("/", 1)[1] for t in tar if t.isfile() and t.name.endswith(".JPEG"))
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert all(len(row) == 7 for row in rows)
    assert sorted(row[0] for row in rows[1:]) == members and len(members) == report["images"]
    assert "train/n01440764/n01440764_1,2.JPEG" in members


@pytest.mark.parametrize("name", [b"n01440764_1\nn01440764_2.JPEG", b"n01440764_1\r.JPEG",
                                  b"n01440764_\x1b[2J.JPEG", b"n01440764_\xff.JPEG",
                                  b"n01440764_1\\..\\x.JPEG"])
def test_a_file_name_with_a_line_break_or_not_utf8_is_refused_in_build_and_verify(sample, tmp_path, name):
    """A line break in a name gave noisy_two.csv an extra row, which `verify --imagenet` passed; a
    name that is not UTF-8 gave a UnicodeEncodeError traceback in noisy._flips. Both are refused
    when planning, by the build and by verify (which plans the same way), in one line."""
    root, _ = sample
    copy = fk.copy_imagenet(root, tmp_path / "imagenet")
    manifest = _two_class_manifest(tmp_path)
    out = tmp_path / "out"
    r = cli("--imagenet", copy, "--manifest", manifest, "--size", "16", "--out", out, "-q")
    assert r.returncode == 0, r.stderr
    with open(os.path.join(os.fsencode(copy / "train" / "n01440764"), name), "wb") as f:
        f.write(fk.good_jpeg())
    # a backslash: a member `extract` would refuse is never built
    what = ("is not UTF-8" if b"\xff" in name else "holds a control character" if name.isascii() and
            b"\\" not in name else "is not a name an archive may hold")
    r = cli("--imagenet", copy, "--manifest", manifest, "--size", "16", "--out", out, "-q")
    fk.one_line_error(r, 1, repr(name), what, "rename or remove the file")
    r = cli("verify", out / "two-16.tgz", "--manifest", manifest, "--imagenet", copy, "-q")
    fk.one_line_error(r, 1, repr(name), what)


# ------------------------------------------------------------------------------ a full disk at commit


@pytest.mark.parametrize("big", ["SHA256SUMS", "MD5SUMS"])
def test_sums_file_that_cannot_be_written_is_named_and_the_archive_is_left_complete(sample, tmp_path, big):
    """Files may not grow past 64 kB, and the sums file `big` already holds 1,500 lines (over 64 kB): the
    archive and its report are written, its sums lines cannot be. The error named the archive as
    "cannot write"; it now names the sums file and says what the archive is left without."""
    root, manifest_path = sample
    out = tmp_path / "out"
    out.mkdir()
    digest_len = 64 if big == "SHA256SUMS" else 32
    (out / big).write_text("".join(f"{i:0{digest_len}x}  other-{i}.tgz\n" for i in range(1500)))
    r = subprocess.run(fk.cli_command("--imagenet", root, "--manifest", manifest_path, "--size", "8", "--out", out,
                                      "-q", "--no-cache"),
                       capture_output=True, text=True, timeout=TIMEOUT, preexec_fn=fk.limit_file_size(64 << 10))
    archive = out / "imagenette2-sample-8.tgz"
    missing = "SHA256SUMS and MD5SUMS" if big == "SHA256SUMS" else "MD5SUMS"
    fk.one_line_error(r, 1, f"{out / big}: cannot write: file too large", f"{archive} is complete and in place with "
                      f"its report, without its line in {missing} (build again)")
    assert fk.archive_is_complete(archive)
    report = json.loads((out / "imagenette2-sample-8.json").read_text())
    assert report["sha256"] == fk.sha256(archive)
    sha_lines = fk.parse_sums(out / "SHA256SUMS")
    assert archive.name not in fk.parse_sums(out / "MD5SUMS")
    assert (archive.name in sha_lines) == (big == "MD5SUMS")
    if big == "MD5SUMS":
        assert sha_lines[archive.name] == fk.sha256(archive)


def test_report_that_cannot_be_written_on_a_full_disk_is_named(sample, tmp_path):
    """A real ENOSPC between the archive's rename and its report (a 1 MB tmpfs, filled while the build
    is paused there): the error names the report, and the archive is there, complete, without report
    or sums lines, as README says."""
    root, manifest_path = sample
    mnt = tmp_path / "small"
    fk.mount_small_tmpfs(mnt, "1m")
    build = subprocess.Popen(fk.paused_cli_command("commit-report", 3, "--imagenet", root, "--manifest",
                                                   manifest_path, "--size", "8", "--out", mnt, "-q", "--no-cache"),
                             stderr=subprocess.PIPE, text=True, preexec_fn=fk.default_sigint)
    try:
        assert build.stderr.readline().strip() == "test-pause commit-report"
        fd = os.open(mnt / "filler", os.O_WRONLY | os.O_CREAT)  # the disk fills up meanwhile
        try:
            while os.write(fd, bytes(4096)):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        err = build.stderr.read()
        build.wait(timeout=TIMEOUT)
        r = subprocess.CompletedProcess(build.args, build.returncode, "", err)
        archive = mnt / "imagenette2-sample-8.tgz"
        fk.one_line_error(r, 1, f"{mnt / 'imagenette2-sample-8.json'}: cannot write the build report: no space left",
                          f"{archive} is complete and in place, without its report and its lines in SHA256SUMS "
                          "and MD5SUMS")
        (mnt / "filler").unlink()
        assert fk.archive_is_complete(archive)
        assert fk.assert_consistent(mnt) == {archive.name: fk.sha256(archive)}
        assert not (mnt / "SHA256SUMS").exists() and not (mnt / "imagenette2-sample-8.json").exists()
    finally:
        if build.poll() is None:
            build.kill()
            build.wait()
        subprocess.run(["umount", str(mnt)], check=True)


# ------------------------------------------------------------------------------ two builds into one --out


SLOW_SUMS = """
import os, sys, time
from imagenette_build import sums
barrier, original, waited = sys.argv.pop(1), sums._write_sums, []

def write_sums(path, entries):
    # Once, before writing SHA256SUMS with this build's line (its read is done): wait up to 6 s
    # for the other build to get here too, so that without a lock both have read the old file.
    if not waited and path.name == "SHA256SUMS" and entries:
        waited.append(1)
        open(os.path.join(barrier, str(os.getpid())), "w").close()
        deadline = time.monotonic() + 6
        while len(os.listdir(barrier)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    original(path, entries)

sums._write_sums = write_sums
from imagenette_build.cli import main
main(sys.argv[1:])
"""


def test_two_builds_of_different_sizes_into_one_folder_keep_both_sums_lines(sample, tmp_path):
    """Two builds at once read SHA256SUMS, then each wrote it with its own line: one line was lost
    (6 of 15 runs when it was found; every time here, where both are held between the read and the
    write). The commit now holds the folder's lock: the second waits, reads the first's line, and
    both lines stay."""
    root, manifest_path = sample
    out, barrier = tmp_path / "out", tmp_path / "barrier"
    barrier.mkdir()
    builds = [subprocess.Popen([sys.executable, "-c", SLOW_SUMS, barrier, "--imagenet", root, "--manifest",
                                manifest_path, "--size", size, "--jobs", "1", "--out", out, "-q"],
                               stderr=subprocess.PIPE, text=True, preexec_fn=fk.default_sigint)
              for size in ("16", "24")]
    for b in builds:
        _, err = b.communicate(timeout=TIMEOUT)
        assert b.returncode == 0, err
    names = {"imagenette2-sample-16.tgz", "imagenette2-sample-24.tgz"}
    listed = {f"imagenette2-sample-{size}.{name}" for size in ("16", "24")
              for name in ("tgz", "provenance.csv", "README.md", "preview.png")}
    assert set(fk.parse_sums(out / "SHA256SUMS")) == set(fk.parse_sums(out / "MD5SUMS")) == listed
    assert set(fk.assert_consistent(out)) == names
    for check, sums in (("sha256sum", "SHA256SUMS"), ("md5sum", "MD5SUMS")):
        assert subprocess.run([check, "-c", "--quiet", sums], cwd=out).returncode == 0
    assert not [n for n in os.listdir(out) if n.endswith(".lock")]


def test_a_second_build_of_the_same_archive_is_refused_while_the_first_runs(sample, tmp_path):
    """The first build pauses after putting its archive in place, before its sums lines; a second
    build of the same archive (other bytes: quality 90) ran through, and the first then wrote its
    sums line beside the second's archive: sha256sum -c failed, both exited 0. The second is now
    refused at once, naming the archive and the first build's process."""
    root, manifest_path = sample
    out = tmp_path / "out"
    args = ["--imagenet", root, "--manifest", manifest_path, "--size", "16", "--jobs", "1", "--out", out, "-q"]
    first = subprocess.Popen(fk.paused_cli_command("commit-sums", 8, *args), stderr=subprocess.PIPE, text=True,
                             preexec_fn=fk.default_sigint)
    assert first.stderr.readline().strip() == "test-pause commit-sums"
    started = time.monotonic()
    second = cli(*args, "--quality", "90")
    took = time.monotonic() - started
    _, err = first.communicate(timeout=TIMEOUT)
    assert first.returncode == 0, err
    archive = out / "imagenette2-sample-16.tgz"
    fk.one_line_error(second, 1, f"{archive}: another build is writing it (process {first.pid})",
                      "wait for it to end, or build into another --out")
    assert took < 8, "refused at once, not after the first build ended"
    fk.assert_consistent(out)
    assert subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=out).returncode == 0
    assert not [n for n in os.listdir(out) if n.endswith(".lock")]


# ------------------------------------------------------------------------------ every val form x label source


@pytest.fixture(scope="module")
def label_layouts(tmp_path_factory):
    """The sample subset with a flat val/ labelled by each source: the devkit extracted, the devkit
    still packed (torchvision's instructions leave train/, val/ and ILSVRC2012_devkit_t12.tar.gz),
    Kaggle's CSV."""
    from imagenette_build import manifest as manifests
    from imagenette_build.samplegen import SampleSpec, generate

    base = tmp_path_factory.mktemp("labels")
    m = manifests.load("imagenette2")
    out = {}
    for layout in ("folders", "flat-devkit", "flat-devkit-archive", "flat-kaggle-csv"):
        stats = generate(SampleSpec(out=base / layout, layout=layout, per_class=2), m, jobs=1)
        out[layout] = (base / layout, stats["manifest"])
    return out


LABEL_FILES = {"flat-devkit": "ILSVRC2012_devkit_t12", "flat-devkit-archive": "ILSVRC2012_devkit_t12.tar.gz",
               "flat-kaggle-csv": "LOC_val_solution.csv"}


@pytest.mark.parametrize("val_form", ["per-class", "flat"])
@pytest.mark.parametrize("labels", list(LABEL_FILES))
def test_every_val_form_with_every_label_source_builds_the_same_archive(label_layouts, tmp_path, val_form, labels):
    """Flat val/ with the devkit still packed was refused ("flat validation images need labels").
    Per-class val/ needs no labels (a label file beside it is left alone); flat val/ is labelled by
    whichever is there. Every combination gives the bytes of the per-class build."""
    import shutil

    folders, manifest_path = label_layouts["folders"]
    r = cli("--imagenet", folders, "--manifest", manifest_path, "--size", "16", "--out", tmp_path / "ref", "-q",
            "--no-cache", "--json")
    assert r.returncode == 0, r.stderr
    reference = json.loads(r.stdout)["sha256"]
    if val_form == "flat":
        root = label_layouts[labels][0]
    else:
        root = fk.copy_imagenet(folders, tmp_path / "imagenet")
        label_file = label_layouts[labels][0] / LABEL_FILES[labels]
        (shutil.copytree if label_file.is_dir() else shutil.copy)(label_file, root / LABEL_FILES[labels])
    r = cli("--imagenet", root, "--manifest", manifest_path, "--size", "16", "--out", tmp_path / "out", "-q",
            "--no-cache", "--json", "--dry-run")
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    assert ("flat val labelled by" in plan["source"]) == (val_form == "flat"), plan["source"]
    if val_form == "flat":
        assert f"labelled by {root / LABEL_FILES[labels]}" in plan["source"], plan["source"]
    r = cli("--imagenet", root, "--manifest", manifest_path, "--size", "16", "--out", tmp_path / "out", "-q",
            "--no-cache", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["sha256"] == reference


# ------------------------------------------------------------------------------ other inputs that were unbounded


def test_classes_file_that_is_a_fifo_is_an_error_not_a_hang(tmp_path):
    fifo = tmp_path / "classes.txt"
    os.mkfifo(fifo)
    r = cli("new-manifest", "x", "--classes-file", fifo, "--out", tmp_path / "x.toml", timeout=30)
    fk.one_line_error(r, 2, f"{fifo}: cannot read: not a regular file: a named pipe")


def test_batch_size_is_bounded(sample, tmp_path):
    """The results of up to 32 tasks per worker are held at once: --batch-size 100000 put every
    image of a build in one task, and every full-size original in memory at once."""
    root, manifest_path = sample
    r = cli("--imagenet", root, "--manifest", manifest_path, "--batch-size", "257", "--out", tmp_path / "o", "-q")
    fk.one_line_error(r, 2, "--batch-size", "257 is not in the range 1<=x<=256")
    assert not (tmp_path / "o").exists()
