"""A small tar reader that finds members by their headers alone.

Two ways over the same header parser:
- `scan_members`: a seekable, uncompressed tar (or a byte range of one: a tar inside a tar) is read
  header by header, seeking past every member's data, so finding the 1000 class tars of
  ILSVRC2012_img_train.tar reads 1000 x 512 bytes, not 138 GB. Each member comes back as its
  absolute (offset, size) in the file.
- `stream_members`: a stream that cannot seek (a gzip-compressed shard) is read once, front to
  back; only the members a predicate wants are returned with their bytes, the others are read past.

Handles ustar, GNU (long names, base-256 sizes) and pax (path, size) headers. Python's tarfile is not
used for the seekable case because it trusts sizes: a truncated tar ends silently there, while
here a member whose data runs past the end of its file (or of its outer member) is an error naming
both. Every failure is a DataError naming the file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from ..errors import DataError
from ..readfile import MAX_SOURCE_IMAGE

BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)
MAX_META = 1 << 20  # pax / GNU long-name records larger than this are not names
REGULAR = (b"0", b"\0", b"7")


@dataclass(frozen=True)
class TarMember:
    name: str  # as stored, long names resolved; may hold folders ("./a/b.JPEG")
    offset: int  # absolute offset of the data in the file read
    size: int

    @property
    def basename(self) -> str:
        return self.name.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class _Header:
    name: str
    size: int
    typeflag: bytes


def _number(field: bytes) -> int:
    if field[:1] and field[0] & 0x80:  # GNU base-256, for sizes of 8 GiB and more
        value = field[0] & 0x3F
        for b in field[1:]:
            value = (value << 8) | b
        return -value if field[0] & 0x40 else value
    text = field.split(b"\0", 1)[0].strip(b" ")
    return int(text, 8) if text else 0


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def parse_header(block: bytes) -> _Header:
    """One 512-byte header; ValueError when it is not one (bad checksum or numbers)."""
    stored = _number(block[148:156])
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])  # the checksum field counts as spaces
    if stored != unsigned and stored != _signed_sum(block):
        raise ValueError("bad header checksum")
    name = _text(block[0:100])
    if block[257:263] == b"ustar\0":  # POSIX ustar: a prefix field extends the name
        prefix = _text(block[345:500])
        if prefix:
            name = f"{prefix}/{name}"
    size = _number(block[124:136])
    if size < 0:
        raise ValueError("negative size")
    return _Header(name, size, block[156:157])


def _signed_sum(block: bytes) -> int:
    # Some old tars computed the checksum over signed chars; tarfile accepts both, so do we.
    return sum((b - 256 if b > 127 else b) for b in block[:148] + b" " * 8 + block[156:])


def _pax_records(data: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data) and data[pos:pos + 1] != b"\0":
        space = data.index(b" ", pos)
        length = int(data[pos:space])
        if length <= 0:
            raise ValueError("bad pax record length")
        key, _, value = data[space + 1:pos + length - 1].partition(b"=")
        out[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out


def _padded(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


class _Pending:
    """Long name / pax values announced by one header for the next one."""

    def __init__(self) -> None:
        self.name: str | None = None
        self.size: int | None = None

    def take(self, header: _Header) -> tuple[str, int]:
        name = self.name if self.name is not None else header.name
        size = self.size if self.size is not None else header.size
        self.name = self.size = None
        return name, size

    def absorb(self, header: _Header, data: bytes) -> None:
        if header.typeflag == b"L":
            self.name = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        elif header.typeflag == b"x":
            records = _pax_records(data)
            if "path" in records:
                self.name = records["path"]
            if "size" in records:
                self.size = int(records["size"])


def read_at(f: BinaryIO, offset: int, n: int) -> bytes:
    """Every byte the seekable scanner reads goes through here (the tests count them)."""
    f.seek(offset)
    return f.read(n)


def scan_members(f: BinaryIO, where: str, start: int = 0, end: int | None = None) -> Iterator[TarMember]:
    """Regular-file members of the tar in f[start:end], by headers only (data is never read).

    `f` is an unbuffered binary file; `where` names it in errors ("ILSVRC2012_img_train.tar member
    n01440764.tar"). Stops at the end-of-archive blocks, or at `end` on a block boundary.
    """
    if end is None:
        f.seek(0, 2)
        end = f.tell()
    pos = start
    pending = _Pending()
    while pos < end:
        block = read_at(f, pos, BLOCK)
        if len(block) < BLOCK or pos + BLOCK > end:
            raise DataError(f"{where}: truncated: the tar ends inside a header at byte {pos - start}")
        if block == ZERO_BLOCK:
            return
        try:
            header = parse_header(block)
        except ValueError as exc:
            raise DataError(f"{where}: not a tar file or corrupt at byte {pos - start} ({exc})") from None
        data_at = pos + BLOCK
        if header.typeflag in (b"L", b"x", b"g", b"K"):
            if header.size > MAX_META or data_at + header.size > end:
                raise DataError(f"{where}: truncated or corrupt extended header at byte {pos - start}")
            meta = read_at(f, data_at, header.size)
            try:
                pending.absorb(header, meta)
            except ValueError as exc:
                raise DataError(f"{where}: corrupt extended header at byte {pos - start} ({exc})") from None
            pos = data_at + _padded(header.size)
            continue
        name, size = pending.take(header)
        if header.typeflag == b"S":
            raise DataError(f"{where}: {name} is a GNU sparse member, which this reader does not support")
        if data_at + size > end:
            raise DataError(f"{where}: truncated: {name} needs {size} bytes at byte {data_at - start}, "
                            f"only {max(0, end - data_at)} are there")
        if header.typeflag in REGULAR:
            yield TarMember(name, data_at, size)
        pos = data_at + _padded(size)


def _read_exact(f: BinaryIO, n: int, where: str, what: str) -> bytes:
    chunks = []
    left = n
    while left:
        chunk = f.read(min(left, 1 << 20))
        if not chunk:
            raise DataError(f"{where}: truncated: the stream ends inside {what}")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _skip(f: BinaryIO, n: int, where: str, what: str) -> None:
    left = n
    while left:
        chunk = f.read(min(left, 1 << 20))
        if not chunk:
            raise DataError(f"{where}: truncated: the stream ends inside {what}")
        left -= len(chunk)


def stream_members(f: BinaryIO, where: str, want: Callable[[str], bool]) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of each regular member `want(name)` accepts, in stream order, one pass.

    Reads on to the end of the stream after the end-of-archive blocks, so a decompressor checks its
    trailer (gzip's CRC and length) before the caller takes the result as complete.
    """
    pending = _Pending()
    offset = 0
    while True:
        block = f.read(BLOCK)
        if len(block) < BLOCK:
            if not block:
                return  # no end-of-archive blocks; tolerated, as tar and tarfile do
            raise DataError(f"{where}: truncated: the stream ends inside a header at byte {offset}")
        if block == ZERO_BLOCK:
            while f.read(1 << 20):
                pass
            return
        try:
            header = parse_header(block)
        except ValueError as exc:
            raise DataError(f"{where}: not a tar stream or corrupt at byte {offset} ({exc})") from None
        offset += BLOCK
        if header.typeflag in (b"L", b"x", b"g", b"K"):
            if header.size > MAX_META:
                raise DataError(f"{where}: corrupt extended header at byte {offset - BLOCK}")
            meta = _read_exact(f, _padded(header.size), where, "an extended header")[:header.size]
            try:
                pending.absorb(header, meta)
            except ValueError as exc:
                raise DataError(f"{where}: corrupt extended header at byte {offset - BLOCK} ({exc})") from None
            offset += _padded(header.size)
            continue
        name, size = pending.take(header)
        if header.typeflag in REGULAR and want(name):
            if size > MAX_SOURCE_IMAGE:  # (held whole once read: refused before the read)
                raise DataError(f"{where}: {name} is {size:,} bytes, more than a source image may have "
                                f"({MAX_SOURCE_IMAGE:,})")
            data = _read_exact(f, size, where, name)
            _skip(f, _padded(size) - size, where, name)
            yield name, data
        else:
            _skip(f, _padded(size), where, name)
        offset += _padded(size)
