"""Deterministic .tgz archives, with every checksum computed while writing.

Determinism is enforced at two choke points, not remembered at call sites:
- `tar_header` is the only place a tar header is made: uid/gid 0, empty owner names, mode 0644
  (files) / 0755 (folders), one mtime for every member, POSIX pax format (plain ustar headers for
  the ASCII names used here);
- the gzip header is written by hand (`GZIP_HEADER`): no file name, mtime 0, XFL 0, OS byte 255
  ("unknown"), so the stream depends only on the tar bytes and the compressor.
Resized archives are deflated with ISA-L (`isal`, standard deflate, several times faster than
zlib) when installed, else Python's zlib. Full-size archives hold the sources' JPEG bytes, which
deflate does not shrink (1.5 % on imagenette2, tar headers included): they are written as stored
deflate blocks (framed here, `stored_blocks`, so that the bytes do not depend on a zlib build), still
a standard .tgz, which costs a fraction of the CPU to write and to read (README "Speed"). Which
compressor and level is in each archive's build report, because the compressed bytes (not the tar
inside) depend on it. The sha256 of the uncompressed tar is reported too: it is the same whatever
the compressor.

Packing runs in three pipeline threads (`_Pipeline`: deflate, hash, write) beside the thread
that adds members, so a full-size build is not bound by one core doing tar, deflate, three hashes
and the writes in turn (README "Speed").

The archive is written under a temporary name in the output folder and renamed into place only
after it is complete and synced: an interrupted run never leaves a file under the final name. A
full-size archive, as big as the sources, is written with O_DIRECT on a local disk's filesystem
(`DirectFile`, `direct_io_wanted`; $IMAGENETTE_BUILD_DIRECT_IO=0 turns that off, =1 asks for it on
any filesystem that takes it): the page cache would only have copied it on its way to the disk.
"""

from __future__ import annotations

import errno
import hashlib
import mmap
import os
import queue
import re
import struct
import tarfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from . import members
from .outputs import create_new, partial_path

try:
    from isal import isal_zlib as _deflate

    COMPRESSOR = "isal"
    COMPRESS_LEVEL = 2  # ISA-L levels are 0..3
except ImportError:  # pragma: no cover - depends on the platform
    import zlib as _deflate

    COMPRESSOR = "zlib"
    COMPRESS_LEVEL = 6

import zlib

DEFAULT_MTIME = 1612569600  # 2021-02-06 00:00:00 UTC, the date of the current imagenette2 file list
FILE_MODE = 0o644
DIR_MODE = 0o755
BLOCK = tarfile.BLOCKSIZE  # 512
RECORD = tarfile.RECORDSIZE  # 10240: GNU tar and Python's tarfile pad the archive to this
FIRST_MIB = 1 << 20
CHUNK = 1 << 20  # tar bytes handed to the deflate stage at a time
WRITEBACK = 64 << 20  # start writing the archive to the disk every this many bytes
DIRECT_ENV = "IMAGENETTE_BUILD_DIRECT_IO"  # "0": never O_DIRECT; "1": wherever it is taken; else "auto"
# Where full-size archives get O_DIRECT by default: filesystems on a local block device, where a
# direct write goes from the buffer to the disk (measured on ext4, README "Speed"). Network, cluster
# and FUSE filesystems (nfs, cifs, lustre, gpfs, ceph, sshfs...) and tmpfs keep the page cache: on the
# first each direct write waits for a server, which was not measured; on tmpfs there is no disk.
DIRECT_FILESYSTEMS = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs"})
MOUNTINFO = "/proc/self/mountinfo"
DIRECT_ALIGN = 4096  # O_DIRECT writes: address, length and file offset multiples of this
DIRECT_BUFFER = 8 << 20  # archive bytes gathered per O_DIRECT write
QUEUE_DEPTH = 8  # chunks waiting per stage: bounds the memory of the pipeline
STORED_BLOCK = 65535  # the most a stored deflate block holds
STORED_END = b"\x01\x00\x00\xff\xff"  # an empty stored block with BFINAL set: the end of the stream
GZIP_HEADER = b"\x1f\x8b\x08\x00" + b"\x00\x00\x00\x00" + b"\x00\xff"  # no name, mtime 0, XFL 0, OS 255


# The tar header's mtime field holds 11 octal digits; GNU tar reads nothing larger from it.
MAX_MTIME = 8 ** 11 - 1  # 2242-03-16


def source_date_epoch() -> int:
    """SOURCE_DATE_EPOCH when set (reproducible-builds.org), else DEFAULT_MTIME. Only plain ASCII
    digits that fit the tar header's mtime field: str.isdigit() also took "²" (then int() raised),
    and 10**20 made an archive GNU tar refuses."""
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if value is None or value == "":
        return DEFAULT_MTIME
    if not (value.isascii() and value.isdigit()) or len(value) > 20 or int(value) > MAX_MTIME:
        from .errors import UserError

        raise UserError(f"SOURCE_DATE_EPOCH={value[:40]!r}: must be a whole number of seconds from 0 to "
                        f"{MAX_MTIME} (what a tar header holds)")
    return int(value)


def stored_blocks(chunk: memoryview) -> bytes:
    """`chunk` as stored deflate blocks (RFC 1951 3.2.4: a byte 0 for BFINAL 0 and BTYPE 00, LEN,
    NLEN, then LEN bytes), STORED_BLOCK bytes each but the last; STORED_END ends the stream. Every
    block starts on a byte boundary because every block before it is stored.

    Written here rather than by zlib at level 0: zlib's cuts between blocks vary with its version
    and build (zlib-ng, which some distributions ship as zlib, is free to cut elsewhere), and a
    full-size archive's bytes should depend on the sources alone. As fast as zlib's copy here."""
    head = struct.Struct("<BHH").pack
    pieces = []
    for start in range(0, len(chunk), STORED_BLOCK):
        part = chunk[start:start + STORED_BLOCK]
        pieces += (head(0, len(part), len(part) ^ 0xFFFF), part)
    return b"".join(pieces)


def compressor_name(stored: bool = False) -> str:
    """What deflates an archive, for the build report; `stored`: a full-size archive."""
    if stored:
        return f"stored deflate blocks of up to {STORED_BLOCK:,} bytes, not compressed (imagenette-build)"
    if COMPRESSOR == "isal":
        import isal

        return f"isal {isal.__version__} (ISA-L deflate level {COMPRESS_LEVEL})"
    return f"zlib {zlib.ZLIB_RUNTIME_VERSION} (deflate level {COMPRESS_LEVEL})"


def tar_header(name: str, size: int, mtime: int, is_dir: bool = False) -> bytes:
    """The one place a tar header is made; everything that could vary between runs is fixed.

    `tarfile` makes it. For the members of every archive here (ASCII names of at most 100 bytes,
    sizes under 8 GiB: a plain ustar header, byte for byte what tarfile gives, tested) a template
    from tarfile is filled in instead: 23 us -> ~3 us a member, in the thread that adds members."""
    if is_dir and not name.endswith("/"):
        name += "/"
    if name.isascii() and len(name) <= NAME_FIELD and size <= MAX_USTAR_SIZE:
        template = _ustar_template(mtime, is_dir)
        if template is not None:
            return _fill_ustar(template, name, 0 if is_dir else size)
    return _tarfile_header(name, size, mtime, is_dir)


def _tarfile_header(name: str, size: int, mtime: int, is_dir: bool) -> bytes:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
    info.size = 0 if is_dir else size
    info.mtime = mtime
    info.mode = DIR_MODE if is_dir else FILE_MODE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


NAME_FIELD = 100  # ustar name field: bytes 0-99
SIZE_FIELD = slice(124, 136)  # 11 octal digits and a NUL
CHKSUM_FIELD = slice(148, 156)  # 6 octal digits, NUL, space
MAX_USTAR_SIZE = 8**11 - 1


@lru_cache(maxsize=8)
def _ustar_template(mtime: int, is_dir: bool) -> bytes | None:
    """tarfile's header for this mtime and type, with the name, size and checksum fields blank;
    None when tarfile needs a pax header for the mtime itself (beyond the year 2242)."""
    header = bytearray(_tarfile_header("x/" if is_dir else "x", 0, mtime, is_dir))
    if len(header) != BLOCK:
        return None
    header[:NAME_FIELD] = bytes(NAME_FIELD)
    header[SIZE_FIELD] = bytes(12)
    header[CHKSUM_FIELD] = b" " * 8
    return bytes(header)


def _fill_ustar(template: bytes, name: str, size: int) -> bytes:
    header = bytearray(template)
    encoded = name.encode("ascii")
    header[:len(encoded)] = encoded
    header[SIZE_FIELD] = b"%011o\0" % size
    header[CHKSUM_FIELD] = b"%06o\0 " % sum(header)  # the sum with the field as spaces, as tarfile does
    return bytes(header)


@dataclass(frozen=True)
class ArchiveInfo:
    path: Path
    size: int
    sha256: str
    md5: str
    md5_first_mib: str
    tar_sha256: str
    members: int
    compressor: str  # compressor_name() of this archive
    members_file: Path  # the sha256 of every file member (`members.py`), beside the archive
    members_sha256: str  # that file's own sha256


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


class _Pipeline:
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
        self.deflate = None if stored else _deflate.compressobj(COMPRESS_LEVEL, _deflate.DEFLATED, -15)
        # Tar bytes are gathered in CHUNK-sized buffers that go round: filled here, read by the
        # deflate stage, returned. A fresh bytes object per chunk cost ~0.9 s per GB of archive in
        # allocation and page faults, in the thread that adds members.
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
            self.crc = _deflate.crc32(chunk, self.crc)
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


def filesystem_type(path: Path, mountinfo: str = MOUNTINFO) -> str | None:
    """The type of the filesystem holding `path` ("ext4", "nfs4", "fuse.sshfs"...), as Linux lists
    it in `mountinfo`: the mount with the longest mount point containing the resolved path (the last
    one mounted, when several share a mount point). None when that cannot be known."""
    target = os.path.realpath(path)
    try:
        with open(mountinfo, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    found, found_len = None, -1
    for line in lines:
        # "36 35 98:0 /root /mnt rw,noatime [optional fields] - ext3 /dev/sda1 rw": the type follows "-"
        fields = line.split(" ")
        try:
            point, fstype = _unescape_mount(fields[4]), fields[fields.index("-", 6) + 1]
        except (ValueError, IndexError):
            continue
        inside = point == "/" or target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= found_len:
            found, found_len = fstype, len(point)
    return found


def _unescape_mount(field: str) -> str:
    """A mountinfo path: space, tab, newline and backslash are written as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def direct_io_wanted(folder: Path) -> bool:
    """Whether a full-size archive in `folder` should be written with O_DIRECT: by
    $IMAGENETTE_BUILD_DIRECT_IO ("0" no, "1" yes), else (unset, "auto", anything else) when the
    folder's filesystem is one of DIRECT_FILESYSTEMS."""
    setting = os.environ.get(DIRECT_ENV, "auto").strip()
    if setting in ("0", "1"):
        return setting == "1"
    return filesystem_type(folder) in DIRECT_FILESYSTEMS


class DirectFile:
    """A write-only file that bypasses the page cache (O_DIRECT, Linux), for full-size archives.

    Written through the page cache, imagenette2's 2 GB cost ~2.4 s more of kernel time, in a 7-8 s
    build, copying the bytes into the cache and writing them back; with O_DIRECT the disk reads
    them from this process's buffer (README "Speed"). The bytes are gathered in an aligned buffer
    and written DIRECT_BUFFER at a time; the last, unaligned piece is written after O_DIRECT is
    turned off for the file. Used where `direct_io_wanted` says so; where the filesystem refuses
    O_DIRECT all the same (tmpfs before Linux 6.6, with the variable at 1) `open` gives None and the
    caller writes as usual; where it refuses one write (another alignment), this
    file goes on without O_DIRECT. The bytes written are the same either way. Not thread-safe: one
    thread writes, then another may close.
    """

    def __init__(self, fd: int):
        self.fd = fd
        self.direct = True
        self._buf = mmap.mmap(-1, DIRECT_BUFFER)  # page-aligned
        self._fill = 0

    @classmethod
    def open(cls, path: Path) -> DirectFile | None:
        """`path` (which exists) opened for writing with O_DIRECT; None where that is not available
        or not wanted (`direct_io_wanted`)."""
        if not hasattr(os, "O_DIRECT") or not direct_io_wanted(path.parent):
            return None
        try:
            fd = os.open(path, os.O_WRONLY | os.O_DIRECT | os.O_CLOEXEC)
        except OSError:  # EINVAL: the filesystem does not do direct I/O
            return None
        return cls(fd)

    def write(self, data: bytes | memoryview) -> None:
        with memoryview(data) as view:
            pos = 0
            while pos < len(view):
                n = min(len(view) - pos, DIRECT_BUFFER - self._fill)
                self._buf[self._fill:self._fill + n] = view[pos:pos + n]
                self._fill += n
                pos += n
                if self._fill == DIRECT_BUFFER:
                    self._write_out(0, DIRECT_BUFFER)
                    self._fill = 0

    def close(self) -> None:
        """Write what is gathered and close (no fsync: the caller syncs the file)."""
        aligned = self._fill - self._fill % DIRECT_ALIGN
        self._write_out(0, aligned)
        if self._fill > aligned:
            self._stop_direct()
            self._write_out(aligned, self._fill)
        self._fill = 0
        self.discard()

    def discard(self) -> None:
        """Close without writing what is gathered; safe to call again."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        try:
            self._buf.close()
        except BufferError:  # a sink thread that was cancelled still holds a view: freed with it
            pass

    def _write_out(self, start: int, end: int) -> None:
        with memoryview(self._buf) as buf:
            while start < end:
                try:
                    start += os.write(self.fd, buf[start:end])
                except OSError as exc:
                    if exc.errno != errno.EINVAL or not self.direct:
                        raise
                    self._stop_direct()  # this filesystem wants other alignments: write as usual

    def _stop_direct(self) -> None:
        import fcntl  # (Linux: O_DIRECT is one of the flags F_SETFL may change)

        if self.direct:
            fcntl.fcntl(self.fd, fcntl.F_SETFL, fcntl.fcntl(self.fd, fcntl.F_GETFL) & ~os.O_DIRECT)
            self.direct = False


class ArchiveWriter:
    """Write `<out>/<stem>.tgz` with the single top folder `<stem>/`.

    Members are added in the caller's order (the plan's); parent folders are added, once, before
    their first member. `stored`: stored deflate blocks instead of compression (full-size archives).
    """

    def __init__(self, final_path: Path, top: str, mtime: int, stored: bool = False):
        self.final_path = final_path
        self.top = top
        self.mtime = mtime
        self.tmp_path = partial_path(final_path)  # `.<name>.partial-<host>-<pid>`
        self._file = open(create_new(self.tmp_path), "wb")
        self.compressor = compressor_name(stored)
        # A full-size archive's bytes, as big as the sources, skip the page cache where they can.
        self._direct = DirectFile.open(self.tmp_path) if stored else None
        self._pipe = _Pipeline(self._direct or self._file, stored)
        self._tar_size = 0
        self._dirs: set[str] = set()
        self.members = 0
        self._closed = False
        sidecar = final_path.with_name(members.sidecar_name(top))
        self._member_hashes = members.Writer(sidecar, partial_path(sidecar))
        self._add_dir(top)

    def _write_tar(self, data: bytes) -> None:
        self._tar_size += len(data)
        self._pipe.write(data)

    def _add_dir(self, name: str) -> None:
        self._dirs.add(name)
        self._write_tar(tar_header(name, 0, self.mtime, is_dir=True))
        self.members += 1

    def _ensure_parents(self, name: str) -> None:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in self._dirs:
                self._add_dir(d)

    def add_file(self, relpath: str, data: bytes) -> None:
        """Add `data` as `<top>/<relpath>`."""
        self.add_chunks(relpath, len(data), (data,))

    def add_chunks(self, relpath: str, size: int, chunks: Iterable[bytes]) -> None:
        """Add `size` bytes, given in pieces, as `<top>/<relpath>`: a generated file as big as the
        plan is never held whole. ValueError if the pieces do not add up to `size`."""
        name = f"{self.top}/{relpath}"
        self._ensure_parents(name)
        self._write_tar(tar_header(name, size, self.mtime))
        written = 0
        digest = hashlib.sha256()
        for chunk in chunks:
            written += len(chunk)
            if written > size:
                break
            digest.update(chunk)
            self._write_tar(chunk)
        if written != size:
            raise ValueError(f"{relpath}: {written} bytes given, {size} announced")
        self._member_hashes.add(relpath, digest.hexdigest())
        pad = -size % BLOCK
        if pad:
            self._write_tar(b"\0" * pad)
        self.members += 1

    def close(self) -> ArchiveInfo:
        """Finish the archive under its temporary name (synced); `commit` renames it into place."""
        end = b"\0" * (2 * BLOCK)
        self._write_tar(end)
        pad = -self._tar_size % RECORD
        if pad:
            self._write_tar(b"\0" * pad)
        pipe = self._pipe
        pipe.close()
        if self._direct is not None:
            self._direct.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._member_hashes.close()
        self._closed = True
        return ArchiveInfo(self.final_path, pipe.size, pipe.sha256.hexdigest(), pipe.md5.hexdigest(),
                           pipe.md5_first.hexdigest(), pipe.tar_sha256.hexdigest(), self.members,
                           self.compressor, self._member_hashes.final_path, self._member_hashes.sha256)

    def commit(self) -> None:
        os.replace(self.tmp_path, self.final_path)

    def commit_members(self) -> None:
        """Put the member list in place (after the archive: `build._commit` says why)."""
        self._member_hashes.commit()

    def abort(self) -> None:
        """Remove the temporary file; safe to call at any point, any number of times."""
        if not self._closed:
            self._pipe.cancel()
            try:
                if self._direct is not None:
                    self._direct.discard()
                self._file.close()
            except OSError:
                pass
            self._closed = True
        self._member_hashes.abort()
        try:
            os.unlink(self.tmp_path)
        except FileNotFoundError:
            pass
