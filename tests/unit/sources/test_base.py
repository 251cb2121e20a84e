"""SourceRef (sources/base.py), the one place a source image is read: only regular files, at most
a source image's bytes, and a read-ahead hint for exactly its bytes."""

from __future__ import annotations

import os
import threading
from unittest import mock

import pytest

from imagenette_build.sources import SourceRef


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


def test_source_ref_prefetch_asks_for_exactly_its_bytes(tmp_path):
    path = tmp_path / "train.tar"
    path.write_bytes(bytes(4096))
    calls = []
    real = os.posix_fadvise
    with mock.patch("os.posix_fadvise", side_effect=lambda *a: (calls.append(a[1:]), real(*a))):
        SourceRef(str(path), 512, 1000).prefetch()
        SourceRef(str(path)).prefetch()
    assert calls == [(512, 1000, os.POSIX_FADV_WILLNEED), (0, 0, os.POSIX_FADV_WILLNEED)]
