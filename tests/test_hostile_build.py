"""Hostile and odd input on the build side (issue 19): files that are not regular files or are far
too large, damaged cache packs, truncated images of the rarer formats, odd file names, a disk that
fills at commit, symlinked root files, bad SOURCE_DATE_EPOCH, unreadable sums files, huge file
lists, too many --jobs, and two builds into one output folder at once. Each ends in a correct
archive or a one-line error naming the file, within a bounded time and memory."""

from __future__ import annotations

import io
import json
import os
import resource
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from imagenette_build.sources import SourceRef
from imagenette_build.transform import Recipe, process_batch

from . import faultkit as fk
from .conftest import run_cli

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


# ------------------------------------------------------------------------------ item 10: regular files, bounded


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


def test_source_ref_reads_only_regular_files(tmp_path):
    fifo = tmp_path / "fifo.JPEG"
    os.mkfifo(fifo)
    outcome = []

    def prefetch_and_read():  # in a thread: a plain open of a FIFO waits for a writer, forever
        SourceRef(str(fifo)).prefetch()
        try:
            SourceRef(str(fifo)).read()
        except OSError as exc:
            outcome.append(str(exc))

    thread = threading.Thread(target=prefetch_and_read, daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive(), "a FIFO blocked the read"
    assert outcome and "not a regular file: a named pipe" in outcome[0]
    tar = tmp_path / "member.tar"
    tar.write_bytes(b"x" * 100)
    with pytest.raises(OSError, match="more than a source image may have"):
        SourceRef(str(tar), 10, 300 << 20).read()  # a tar member declaring 300 MB
    assert SourceRef(str(tar), 10, 5).read() == b"xxxxx"


# ------------------------------------------------------------------------------ item 2: cache faults are the cache's


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
    r = cli(*args, "--out", out)
    assert r.returncode == 0, r.stderr
    packs = sorted((out / fk.CACHE / "packs").iterdir())
    if fault == "offset_bit":
        for pack in packs:
            _flip_first_offset(pack)
    else:
        os.mkfifo(out / fk.CACHE / "packs" / ("0" * 32 + ".pack"))
    for extra in ((), ("--skip-broken",)):
        r = cli(*args, "--out", out, "--json", *extra)
        assert r.returncode == 0, r.stderr
        report = json.loads(r.stdout)
        assert report["sha256"] == clean
        assert report["skipped"] == []
        if fault == "offset_bit":  # (the second run finds the copies the first one made again)
            assert report["cache"]["damaged"] == (len(packs) if not extra else 0)
        else:
            assert report["cache"]["hits"] == 50
    fk.assert_consistent(out)
