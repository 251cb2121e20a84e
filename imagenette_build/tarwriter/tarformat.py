"""The bytes of a deterministic .tgz: tar headers, the gzip header, stored deflate blocks.

Determinism is enforced at two choke points, not remembered at call sites:
- `tar_header` is the only place a tar header is made: uid/gid 0, empty owner names, mode 0644
  (files) / 0755 (folders), one mtime for every member, POSIX pax format (plain ustar headers for
  the ASCII names used here);
- the gzip header is written by hand (`GZIP_HEADER`): no file name, mtime 0, XFL 0, OS byte 255
  ("unknown"), so the stream depends only on the tar bytes and the compressor.
Resized archives are deflated with ISA-L (`isal`, standard deflate, faster than zlib) when
installed, else Python's zlib. Full-size archives hold the sources' JPEG bytes, which deflate does
not shrink: they are written as stored deflate blocks (framed here, `stored_blocks`, so that the
bytes do not depend on a zlib build), still a standard .tgz, which costs a fraction of the CPU to
write and to read. Which compressor and level is in each archive's build report, because the
compressed bytes (not the tar inside) depend on it. The sha256 of the uncompressed tar is reported
too: it is the same whatever the compressor.
"""

from __future__ import annotations

import struct
import tarfile
from functools import lru_cache

try:
    from isal import isal_zlib as deflate_lib

    COMPRESSOR = "isal"
    COMPRESS_LEVEL = 2  # ISA-L levels are 0..3
except ImportError:  # pragma: no cover - depends on the platform
    import zlib as deflate_lib

    COMPRESSOR = "zlib"
    COMPRESS_LEVEL = 6

import zlib

FILE_MODE = 0o644
DIR_MODE = 0o755
BLOCK = tarfile.BLOCKSIZE  # 512
RECORD = tarfile.RECORDSIZE  # 10240: GNU tar and Python's tarfile pad the archive to this
STORED_BLOCK = 65535  # the most a stored deflate block holds
STORED_END = b"\x01\x00\x00\xff\xff"  # an empty stored block with BFINAL set: the end of the stream
GZIP_HEADER = b"\x1f\x8b\x08\x00" + b"\x00\x00\x00\x00" + b"\x00\xff"  # no name, mtime 0, XFL 0, OS 255




def stored_blocks(chunk: memoryview) -> bytes:
    """`chunk` as stored deflate blocks (RFC 1951 3.2.4: a byte 0 for BFINAL 0 and BTYPE 00, LEN,
    NLEN, then LEN bytes), STORED_BLOCK bytes each but the last; STORED_END ends the stream. Every
    block starts on a byte boundary because every block before it is stored.

    Written here rather than by zlib at level 0: zlib's cuts between blocks vary with its version
    and build (zlib-ng, which some distributions ship as zlib, is free to cut elsewhere), and a
    full-size archive's bytes should depend on the sources alone."""
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
    from tarfile is filled in instead, which is much cheaper, in the thread that adds members."""
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
