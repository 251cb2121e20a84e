"""The byte layer under `archive_reader`: a file read forward once, hashed as it is read, and handed
to tarfile as tar bytes, inflated (a .tgz: `GunzipStream`) or as they are (a plain tar, a
WebDataset shard: `PlainStream`).

The gzip layer is ours rather than tarfile's `r|gz` because tarfile's stream mode never checks the
gzip trailer (CRC-32 and length), inflates without an output limit, and cannot tell a clean end from
a truncated file or from garbage after the stream. Here zlib checks the trailer (`wbits=31`),
output is bounded per read, and every way the stream can be broken becomes one `StreamProblem`
message. A file of several gzip members (`cat a.gz b.gz`, which gzip and tar read as one) is one
stream; after the last member, anything is garbage. Both streams also track what `archive_reader`
needs to judge the tar's end: the bytes handed out and where the last non-zero one was.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass

GZIP_MAGIC = b"\x1f\x8b"
FIRST_MIB = 1 << 20
RAW_CHUNK = 1 << 20


class StreamProblem(Exception):
    """The archive's byte stream is broken (truncated, corrupt, not gzip): a one-line message."""


@dataclass(frozen=True)
class Digests:
    size: int
    sha256: str
    md5: str
    md5_first_mib: str

    @classmethod
    def of(cls, data: bytes) -> Digests:
        """The digests of bytes held whole (a document beside an archive or in a shard folder)."""
        return cls(len(data), hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest(),
                   hashlib.md5(data[:FIRST_MIB]).hexdigest())


class HashingReader:
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


# tarfile skips a member's data by reading on, whatever the reads return: a member that declares
# more than the stream holds (a GNU header can declare 2^88 bytes) kept it reading nothing, forever.
# So a read after the end raises.
_PAST_THE_END = "truncated: the tar ends inside a member's data"


class _TarBytes:
    """What both streams count of the tar bytes they hand out."""

    gzip = False
    ended = False  # the stream has ended and `read` has said so
    tar_bytes = 0  # bytes handed out
    last_nonzero = -1  # offset of the last non-zero byte handed out (garbage after the tar's end)

    def _note(self, out: bytes) -> None:
        stripped = out.rstrip(b"\0")
        if stripped:
            self.last_nonzero = self.tar_bytes + len(stripped) - 1
        self.tar_bytes += len(out)

    def drain(self) -> None:
        """Read to the end (a gzip member's CRC-32 and length are checked there)."""
        while not self.ended:
            self.read(RAW_CHUNK)

    def read(self, size: int = -1) -> bytes:
        raise NotImplementedError


class PlainStream(_TarBytes):
    """The bytes of a plain (uncompressed) tar for tarfile, from a hashed raw file."""

    def __init__(self, raw: HashingReader):
        self.raw = raw
        self._buf = b""
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        if self.ended:
            raise StreamProblem(_PAST_THE_END)
        if self._pos == len(self._buf):  # (sliced by position: tarfile reads 512-byte headers)
            self._buf, self._pos = self.raw.read(), 0
            if not self._buf:
                self.ended = True
                return b""
        limit = size if size and size > 0 else RAW_CHUNK
        out = self._buf[self._pos:self._pos + limit]
        self._pos += len(out)
        self._note(out)
        return out

    def trailing_bytes(self) -> int:
        """A plain tar has no framing after its end: what follows it is in `last_nonzero`."""
        return 0


class GunzipStream(_TarBytes):
    """Inflated tar bytes for tarfile, from a hashed raw file; raises StreamProblem when broken."""

    gzip = True

    def __init__(self, raw: HashingReader):
        self.raw = raw
        self._inflate = zlib.decompressobj(wbits=31)  # gzip: header parsed, CRC-32 and length checked
        self._tail = b""  # compressed input not yet inflated (output limit reached)
        self._started = False
        self._garbage = 0  # bytes read after the last gzip member that do not start another

    def read(self, size: int = -1) -> bytes:
        if self.ended:
            raise StreamProblem(f"{_PAST_THE_END} (the gzip stream itself is complete)")
        limit = size if size and size > 0 else RAW_CHUNK
        while True:
            if self._inflate.eof and not self._next_member():
                self.ended = True
                return b""
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

    def _next_member(self) -> bool:
        """At the end of a gzip member: start the next one if another follows (`cat a.gz b.gz`)."""
        rest = self._inflate.unused_data
        while len(rest) < len(GZIP_MAGIC) and (more := self.raw.read()):
            rest += more
        if rest[:len(GZIP_MAGIC)] != GZIP_MAGIC:
            self._garbage = len(rest)
            return False
        self._inflate = zlib.decompressobj(wbits=31)
        self._tail = rest
        return True

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

    def trailing_bytes(self) -> int:
        """After the gzip stream ended: how many bytes follow it in the file (all read and hashed)."""
        return self._garbage + self.raw.drain()
