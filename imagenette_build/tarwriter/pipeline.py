"""The threads that deflate, hash and write an archive while its members are still being added.

Packing runs in three pipeline threads (`Pipeline`: deflate, hash, write) beside the thread that
adds members, so a full-size build is not bound by one core doing tar, deflate, three hashes and
the writes in turn.
"""

from __future__ import annotations

import hashlib
import os
import queue
import struct
import threading

from .directio import DirectFile
from .tarformat import COMPRESS_LEVEL, GZIP_HEADER, STORED_END, deflate_lib, stored_blocks

FIRST_MIB = 1 << 20
CHUNK = 1 << 20  # tar bytes handed to the deflate stage at a time
WRITEBACK = 64 << 20  # start writing the archive to the disk every this many bytes
QUEUE_DEPTH = 8  # chunks waiting per stage: bounds the memory of the pipeline


class _Stage(threading.Thread):
    """One stage of the packing pipeline: a thread applying `work` to each item of a bounded queue.

    After the first error the stage keeps taking (and dropping) items, so the stage before it never
    blocks on a full queue; the error is raised in the writing thread by `check`.
    """

    def __init__(self, name: str, work, finish=None, downstream: _Stage | None = None):
        super().__init__(name=f"imagenette-build {name}", daemon=True)
        self.queue: queue.Queue = queue.Queue(QUEUE_DEPTH)
        self.work = work
        self.finish = finish
        self.downstream = downstream
        self.error: BaseException | None = None
        self.cancelled = False

    def run(self) -> None:
        while True:
            item = self.queue.get()
            if item is _END:
                if self.finish is not None and self.error is None and not self.cancelled:
                    self._call(self.finish)
                if self.downstream is not None:
                    self.downstream.queue.put(_END)
                return
            if self.error is None and not self.cancelled:
                self._call(self.work, item)

    def _call(self, func, *args) -> None:
        try:
            func(*args)
        except BaseException as exc:  # raised again in the writing thread
            self.error = exc

    def put(self, item) -> None:
        self.check()
        self.queue.put(item)

    def check(self) -> None:
        if self.error is not None:
            raise self.error


_END = object()


class Pipeline:
    """tar bytes -> [deflate stage: tar sha256, crc32, deflate] -> [hash stage: sha256, md5, md5 of
    the first MiB] -> [sink stage: write]. The stages run in threads (hashlib, ISA-L, zlib and file
    writes release the GIL), so packing overlaps with itself and with the caller; three stages keep
    the longest one short (a full-size archive's deflate is a copy, its hashes and writes are not).
    The queues are bounded, so at most about 3 x QUEUE_DEPTH chunks are held. The bytes written do
    not depend on timing nor on how the tar bytes were handed over: the chunks are fixed
    CHUNK-sized pieces of the tar stream."""

    def __init__(self, f, stored: bool = False):
        self.f = f
        self.size = 0  # bytes hashed (the hash stage)
        self.written = 0  # bytes written (the sink stage)
        self._flushed = 0  # bytes whose writeback was started
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5()
        self.md5_first = hashlib.md5()
        self.tar_sha256 = hashlib.sha256()
        self.tar_size = 0
        self.crc = 0
        self.stored = stored
        self.deflate = None if stored else deflate_lib.compressobj(COMPRESS_LEVEL, deflate_lib.DEFLATED, -15)
        # Tar bytes are gathered in CHUNK-sized buffers that go round: filled here, read by the
        # deflate stage, returned. A fresh bytes object per chunk costs allocation and page faults,
        # in the thread that adds members.
        self._free: queue.Queue = queue.Queue()
        for _ in range(QUEUE_DEPTH + 2):
            self._free.put(bytearray(CHUNK))
        self._buf = self._free.get()
        self._fill = 0
        self.sink = _Stage("sink", self._sink)
        self.hasher = _Stage("hash", self._hash, downstream=self.sink)
        self.deflater = _Stage("deflate", self._deflate, finish=self._finish, downstream=self.hasher)
        self.stages = (self.deflater, self.hasher, self.sink)
        for stage in self.stages:
            stage.start()
        self.hasher.put(GZIP_HEADER)

    # -- the writing thread
    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = min(len(view), CHUNK - self._fill)
            self._buf[self._fill:self._fill + n] = view[:n]
            self._fill += n
            view = view[n:]
            if self._fill == CHUNK:
                self._send()

    def _check(self) -> None:
        for stage in self.stages:
            stage.check()

    def _send(self) -> None:
        """Hand the current buffer (its first `_fill` bytes) to the deflate stage; take a free one.
        Chunks are exactly CHUNK bytes but the last: the deflate output depends on where the input
        is cut (ISA-L's does), and this way only on the tar bytes."""
        self._check()
        self.deflater.put((self._buf, self._fill))
        while True:  # a stage that failed stops returning buffers: notice its error instead of waiting
            try:
                self._buf = self._free.get(timeout=0.5)
                break
            except queue.Empty:
                self._check()
        self._fill = 0

    def close(self) -> None:
        """Everything compressed, hashed and written (not yet synced); raises a stage's error."""
        if self._fill:
            self._send()
        self.deflater.put(_END)
        for stage in self.stages:
            stage.join()
        self._check()

    def cancel(self) -> None:
        """Stop every stage, dropping what is queued; returns within seconds (daemon threads)."""
        for stage in self.stages:
            stage.cancelled = True
        if self.deflater.is_alive():
            try:  # a cancelled stage drains its queue at once, so this put succeeds quickly
                self.deflater.queue.put(_END, timeout=5)
            except queue.Full:
                pass
        for stage in self.stages:
            stage.join(timeout=5)

    # -- the deflate stage
    def _deflate(self, item: tuple[bytearray, int]) -> None:
        buf, size = item
        try:
            chunk = memoryview(buf)[:size]
            self.tar_sha256.update(chunk)
            self.tar_size += size
            self.crc = deflate_lib.crc32(chunk, self.crc)
            out = stored_blocks(chunk) if self.stored else self.deflate.compress(chunk)
            chunk.release()
        finally:
            self._free.put(buf)
        self.hasher.put(out)

    def _finish(self) -> None:
        end = STORED_END if self.stored else self.deflate.flush()
        tail = end + struct.pack("<II", self.crc & 0xFFFFFFFF, self.tar_size & 0xFFFFFFFF)
        self.hasher.put(tail)

    # -- the hash stage
    def _hash(self, data: bytes) -> None:
        if not data:
            return
        if self.size < FIRST_MIB:
            self.md5_first.update(data[: FIRST_MIB - self.size])
        self.size += len(data)
        self.sha256.update(data)
        self.md5.update(data)
        self.sink.put(data)

    # -- the sink stage
    def _sink(self, data: bytes) -> None:
        self.f.write(data)
        self.written += len(data)
        if self.written - self._flushed >= WRITEBACK and not isinstance(self.f, DirectFile):
            self._start_writeback()

    def _start_writeback(self) -> None:
        """Start writing what is written so far to the disk, without waiting for it (Linux does
        that for POSIX_FADV_DONTNEED, and then drops those pages from the page cache), so the
        final fsync has little left to do."""
        self.f.flush()
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(self.f.fileno(), self._flushed, self.written - self._flushed, os.POSIX_FADV_DONTNEED)
        self._flushed = self.written
