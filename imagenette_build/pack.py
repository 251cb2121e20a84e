"""Deterministic .tgz archives, with every checksum computed while writing.

Determinism is enforced at two choke points, not remembered at call sites:
- `tar_header` is the only place a tar header is made: uid/gid 0, empty owner names, mode 0644
  (files) / 0755 (folders), one mtime for every member, POSIX pax format (plain ustar headers for
  the ASCII names used here);
- `GzipWriter` writes the gzip header by hand: no file name, mtime 0, XFL 0, OS byte 255
  ("unknown"), so the stream depends only on the tar bytes and the compressor.
The compressor is ISA-L (`isal`, standard deflate, several times faster than zlib) when installed,
else Python's zlib; which one, and its level, is in the build report, because the compressed bytes
(not the tar inside) depend on it. The sha256 of the uncompressed tar is reported too: it is the
same whatever the compressor.

The archive is written under a temporary name in the output folder and renamed into place only
after it is complete and synced: an interrupted run never leaves a file under the final name.
"""

from __future__ import annotations

import hashlib
import os
import struct
import tarfile
from dataclasses import dataclass
from pathlib import Path

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


def source_date_epoch() -> int:
    """SOURCE_DATE_EPOCH when set (reproducible-builds.org), else DEFAULT_MTIME."""
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if value is None or value == "":
        return DEFAULT_MTIME
    if not value.isdigit():
        from .errors import UserError

        raise UserError(f"SOURCE_DATE_EPOCH={value!r}: must be a whole number of seconds")
    return int(value)


def compressor_name() -> str:
    if COMPRESSOR == "isal":
        import isal

        return f"isal {isal.__version__} (ISA-L deflate level {COMPRESS_LEVEL})"
    return f"zlib {zlib.ZLIB_RUNTIME_VERSION} (deflate level {COMPRESS_LEVEL})"


def tar_header(name: str, size: int, mtime: int, is_dir: bool = False) -> bytes:
    """The one place a tar header is made; everything that could vary between runs is fixed."""
    info = tarfile.TarInfo(name + "/" if is_dir and not name.endswith("/") else name)
    info.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
    info.size = 0 if is_dir else size
    info.mtime = mtime
    info.mode = DIR_MODE if is_dir else FILE_MODE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


@dataclass(frozen=True)
class ArchiveInfo:
    path: Path
    size: int
    sha256: str
    md5: str
    md5_first_mib: str
    tar_sha256: str
    members: int


class _HashingFile:
    """The compressed output: written to disk and hashed (sha256, md5, md5 of the first MiB)."""

    def __init__(self, f):
        self.f = f
        self.size = 0
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5()
        self.md5_first = hashlib.md5()

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self.size < FIRST_MIB:
            self.md5_first.update(data[: FIRST_MIB - self.size])
        self.size += len(data)
        self.sha256.update(data)
        self.md5.update(data)
        self.f.write(data)


class GzipWriter:
    """A standard gzip member (RFC 1952) with a fixed header, over a raw deflate stream."""

    HEADER = b"\x1f\x8b\x08\x00" + b"\x00\x00\x00\x00" + b"\x00\xff"  # no name, mtime 0, XFL 0, OS 255

    def __init__(self, out: _HashingFile):
        self.out = out
        self.crc = 0
        self.length = 0
        self.deflate = _deflate.compressobj(COMPRESS_LEVEL, _deflate.DEFLATED, -15)
        out.write(self.HEADER)

    def write(self, data: bytes) -> None:
        self.crc = _deflate.crc32(data, self.crc)
        self.length += len(data)
        self.out.write(self.deflate.compress(data))

    def close(self) -> None:
        self.out.write(self.deflate.flush())
        self.out.write(struct.pack("<II", self.crc & 0xFFFFFFFF, self.length & 0xFFFFFFFF))


class ArchiveWriter:
    """Write `<out>/<stem>.tgz` with the single top folder `<stem>/`.

    Members are added in the caller's order (the plan's); parent folders are added, once, before
    their first member.
    """

    def __init__(self, final_path: Path, top: str, mtime: int):
        self.final_path = final_path
        self.top = top
        self.mtime = mtime
        self.tmp_path = final_path.with_name(f".{final_path.name}.partial-{os.getpid()}")
        self._file = open(self.tmp_path, "wb")
        self._out = _HashingFile(self._file)
        self._gz = GzipWriter(self._out)
        self._tar_sha256 = hashlib.sha256()
        self._tar_size = 0
        self._dirs: set[str] = set()
        self.members = 0
        self._closed = False
        self._add_dir(top)

    def _write_tar(self, data: bytes) -> None:
        self._tar_sha256.update(data)
        self._tar_size += len(data)
        self._gz.write(data)

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
        name = f"{self.top}/{relpath}"
        self._ensure_parents(name)
        self._write_tar(tar_header(name, len(data), self.mtime))
        self._write_tar(data)
        pad = -len(data) % BLOCK
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
        self._gz.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._closed = True
        return ArchiveInfo(self.final_path, self._out.size, self._out.sha256.hexdigest(),
                           self._out.md5.hexdigest(), self._out.md5_first.hexdigest(),
                           self._tar_sha256.hexdigest(), self.members)

    def commit(self) -> None:
        os.replace(self.tmp_path, self.final_path)

    def abort(self) -> None:
        """Remove the temporary file; safe to call at any point, any number of times."""
        if not self._closed:
            try:
                self._file.close()
            except OSError:
                pass
            self._closed = True
        try:
            os.unlink(self.tmp_path)
        except FileNotFoundError:
            pass
