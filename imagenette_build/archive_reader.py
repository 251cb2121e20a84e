"""Read a .tgz as one forward stream, safely: for `verify`, which must never trust the archive.

One pass over the file does everything: the compressed bytes are hashed (size, sha256, md5, md5 of
the first MiB) as they are read, inflated here, and the tar inside is walked with
`tarfile.open(fileobj=..., mode="r|")`. Nothing is extracted, nothing is written, and memory holds
one member at a time.

The gzip layer is ours rather than tarfile's `r|gz` because tarfile's stream mode never checks the
gzip trailer (CRC-32 and length), inflates without an output limit, and cannot tell a clean end from
a truncated file or from garbage after the stream. Here zlib checks the trailer (`wbits=31`),
output is bounded per read, and every way the stream can be broken becomes one `StreamProblem`
message, never an exception out of `entries()`.

Members that could do harm if extracted (absolute paths, `..`, links, devices, FIFOs) are reported
with the reason and their data is never read.
"""

from __future__ import annotations

import hashlib
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

GZIP_MAGIC = b"\x1f\x8b"
FIRST_MIB = 1 << 20
RAW_CHUNK = 1 << 20
# No image of any ImageNet subset comes near this; a bigger member is not read into memory.
MAX_MEMBER_BYTES = 256 << 20
END_OF_ARCHIVE = 2 * tarfile.BLOCKSIZE  # two zero blocks close a tar


class StreamProblem(Exception):
    """The archive's byte stream is broken (truncated, corrupt, not gzip): a one-line message."""


@dataclass(frozen=True)
class Digests:
    size: int
    sha256: str
    md5: str
    md5_first_mib: str


class _HashingReader:
    """The raw file, hashed as it is read."""

    def __init__(self, f):
        self.f = f
        self.size = 0
        self._sha256 = hashlib.sha256()
        self._md5 = hashlib.md5()
        self._md5_first = hashlib.md5()

    def read(self) -> bytes:
        data = self.f.read(RAW_CHUNK)
        if data:
            if self.size < FIRST_MIB:
                self._md5_first.update(data[:FIRST_MIB - self.size])
            self.size += len(data)
            self._sha256.update(data)
            self._md5.update(data)
        return data

    def drain(self) -> int:
        """Hash the rest of the file; the number of bytes that were left."""
        left = 0
        while data := self.read():
            left += len(data)
        return left

    def digests(self) -> Digests:
        return Digests(self.size, self._sha256.hexdigest(), self._md5.hexdigest(), self._md5_first.hexdigest())


class _GunzipStream:
    """Inflated tar bytes for tarfile, from a hashed raw file; raises StreamProblem when broken."""

    def __init__(self, raw: _HashingReader):
        self.raw = raw
        self._inflate = zlib.decompressobj(wbits=31)  # gzip: header parsed, CRC-32 and length checked
        self._tail = b""  # compressed input not yet inflated (output limit reached)
        self._started = False
        self.tar_bytes = 0  # inflated bytes handed out
        self.last_nonzero = -1  # offset of the last non-zero inflated byte (garbage after the tar's end)

    def read(self, size: int = -1) -> bytes:
        limit = size if size and size > 0 else RAW_CHUNK
        while not self._inflate.eof:
            data = self._tail or self._next_raw()
            try:
                out = self._inflate.decompress(data, limit)
            except zlib.error as exc:
                raise StreamProblem(f"corrupt gzip data near compressed byte {self.raw.size:,}: "
                                    f"{str(exc).rpartition(': ')[2]}") from None
            self._tail = self._inflate.unconsumed_tail
            if out:
                self._note(out)
                return out
        return b""

    def _next_raw(self) -> bytes:
        data = self.raw.read()
        if not self._started:
            self._started = True
            if data[:2] != GZIP_MAGIC:
                what = "an empty file" if not data else f"starts with {data[:8].hex(' ')}"
                raise StreamProblem(f"not a gzip file ({what})")
        if not data:
            raise StreamProblem(f"truncated: the gzip stream stops after {self.raw.size:,} bytes, "
                                "before its end")
        return data

    def _note(self, out: bytes) -> None:
        stripped = out.rstrip(b"\0")
        if stripped:
            self.last_nonzero = self.tar_bytes + len(stripped) - 1
        self.tar_bytes += len(out)

    def trailing_bytes(self) -> int:
        """After the gzip stream ended: how many bytes follow it in the file (all read and hashed)."""
        return len(self._inflate.unused_data) + self.raw.drain()


@dataclass(frozen=True)
class Entry:
    """One tar member. `data` is set only for a safe regular file no bigger than MAX_MEMBER_BYTES."""

    name: str
    kind: str  # "file", "dir", or what else it is ("symlink", "fifo", ...)
    size: int
    data: bytes | None
    unsafe: str | None  # why extracting it could do harm, if it could

    @property
    def too_large(self) -> bool:
        return self.kind == "file" and self.unsafe is None and self.data is None


_KINDS = {
    tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink", tarfile.CHRTYPE: "character device",
    tarfile.BLKTYPE: "block device", tarfile.FIFOTYPE: "fifo", tarfile.CONTTYPE: "contiguous file",
    tarfile.GNUTYPE_SPARSE: "sparse file",
}


def unsafe_reason(info: tarfile.TarInfo) -> str | None:
    """Why extracting this member could write outside the target folder or make a special file."""
    kind = _KINDS.get(info.type, f"member of type {info.type!r}")
    if kind not in ("file", "dir"):
        target = f" -> {info.linkname}" if info.issym() or info.islnk() else ""
        return f"{kind}{target}"
    name = info.name
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if ".." in name.replace("\\", "/").split("/"):
        return "'..' in the path"
    if not name or "\0" in name:
        return "empty name"
    return None


class ArchiveStream:
    """`for entry in stream.entries()`, then `stream.problem` (None when the stream was sound) and
    `stream.digests()`. Open errors (no such file, permission) are UserErrors: exit code 2."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self._file = open(path, "rb")
        except FileNotFoundError:
            raise UserError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise UserError(f"{path}: is a folder, not an archive") from None
        except OSError as exc:
            raise UserError(f"{path}: cannot read: {exc.strerror or exc}") from None
        self._raw = _HashingReader(self._file)
        self._gunzip = _GunzipStream(self._raw)
        self.problem: str | None = None
        self.complete = False  # every member was read (a problem, if any, came after the last one)
        self._last_member: str | None = None
        self.io_error: str | None = None  # reading the file itself failed: exit code 2, not a verdict

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ArchiveStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def digests(self) -> Digests:
        return self._raw.digests()

    def entries(self) -> Iterator[Entry]:
        """Every member in stream order. Never raises: a broken stream ends the iteration and sets
        `problem`; the whole file is read (and hashed) either way."""
        try:
            tar = tarfile.open(fileobj=self._gunzip, mode="r|")
            while (info := tar.next()) is not None:
                tar.members.clear()  # stream mode keeps every TarInfo; memory must not grow with members
                self._last_member = info.name
                yield self._entry(tar, info)
            self.complete = True
            self.problem = self._end_problem(tar.offset)
        except StreamProblem as exc:
            self.problem = self._where(str(exc))
        except tarfile.TarError as exc:
            self.problem = self._where(f"not a valid tar stream inside the gzip: {exc}")
        except OSError as exc:
            self.io_error = f"{self.path}: cannot read: {exc.strerror or exc}"
        finally:
            self._finish_hashing()

    def _entry(self, tar: tarfile.TarFile, info: tarfile.TarInfo) -> Entry:
        unsafe = unsafe_reason(info)
        kind = _KINDS.get(info.type, "other")
        data = None
        if kind == "file" and unsafe is None and info.size <= MAX_MEMBER_BYTES:
            data = tar.extractfile(info).read()
        return Entry(info.name, kind, info.size, data, unsafe)

    def _where(self, message: str) -> str:
        return f"{message} (last member read: {self._last_member})" if self._last_member else message

    def _end_problem(self, tar_end: int) -> str | None:
        """After tarfile's last member: the rest must be the end-of-archive zeros, then the gzip
        trailer, then nothing. tarfile stops quietly at a damaged header, so check here."""
        while self._gunzip.read(RAW_CHUNK):  # inflate to the end: the CRC is checked there
            pass
        if self._gunzip.last_nonzero >= tar_end:
            return self._where(f"damaged tar header or garbage at offset {tar_end:,} of the tar; "
                               "the members after it cannot be read")
        if self._gunzip.tar_bytes < tar_end + END_OF_ARCHIVE:
            return "the tar has no end-of-archive marker (truncated before the gzip was made?)"
        trailing = self._gunzip.trailing_bytes()
        if trailing:
            return f"{trailing:,} bytes of garbage after the end of the gzip stream"
        return None

    def _finish_hashing(self) -> None:
        try:
            self._raw.drain()
        except OSError as exc:
            self.io_error = self.io_error or f"{self.path}: cannot read: {exc.strerror or exc}"
