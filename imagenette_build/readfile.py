"""Reading files that others put in place (source images, manifests and the files they name, cache
packs, sums files): regular files only, and never more than a stated number of bytes.

Opening a named pipe (FIFO) for reading waits for a writer, forever if none comes, and a symlink to
/dev/zero never ends. So a path is opened with O_NONBLOCK (which regular files ignore), the file
that was opened is checked with fstat (no window for a swap between a check and the open), and a
file larger than its bound is refused before anything is read. The errors are OSErrors naming the
file, so every caller's existing `except OSError` reports them as one line.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

MIB = 1 << 20
# No ImageNet image comes near this (the largest ILSVRC-2012 JPEG is about 15 MB); a bigger "image"
# is a mistake or an attack (a symlink to a huge file), refused before it is read.
MAX_SOURCE_IMAGE = 256 * MIB
MAX_TEXT_FILE = 256 * MIB  # a manifest's files, label files, sums files (the largest real one: ~13 MB)

_KINDS = ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))


def kind_of(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _refuse(path: str, text: str, code: int = errno.EINVAL) -> OSError:
    return OSError(code, text, path)


def open_regular(path: str | os.PathLike, follow_symlinks: bool = True) -> int:
    """A read-only descriptor of `path`, which must be a regular file (OSError otherwise).
    `follow_symlinks=False`: a symlink in the last component is refused too."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow_symlinks else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if not follow_symlinks and exc.errno == errno.ELOOP and os.path.islink(path):
            raise _refuse(os.fspath(path), "is a symbolic link, not a regular file") from None
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _refuse(os.fspath(path), f"not a regular file: {kind_of(mode)}")
    return fd


def _too_large(path: str, size: int, limit: int, what: str) -> OSError:
    return _refuse(path, f"{size:,} bytes, more than {what} may have ({limit:,})", errno.EFBIG)


@contextmanager
def opened(path: str | os.PathLike, limit: int, what: str = "such a file",
           follow_symlinks: bool = True) -> Iterator[tuple[BinaryIO, int]]:
    """(unbuffered file, size) of a regular file of at most `limit` bytes."""
    fd = open_regular(path, follow_symlinks)
    with open(fd, "rb", buffering=0) as f:
        size = os.fstat(fd).st_size
        if size > limit:
            raise _too_large(os.fspath(path), size, limit, what)
        yield f, size


def read_bytes(path: str | os.PathLike, limit: int, what: str = "such a file", offset: int = 0,
               length: int = -1, follow_symlinks: bool = True) -> bytes:
    """`length` bytes at `offset` (-1: up to the end) of a regular file; at most `limit` bytes."""
    return read_with_stat(path, limit, what, offset, length, follow_symlinks)[0]


def read_with_stat(path: str | os.PathLike, limit: int, what: str = "such a file", offset: int = 0,
                   length: int = -1, follow_symlinks: bool = True) -> tuple[bytes, os.stat_result]:
    """`read_bytes`, and the fstat of the very file read (for a key naming that file)."""
    fd = open_regular(path, follow_symlinks)
    try:
        st = os.fstat(fd)
        n = st.st_size - offset if length < 0 else length
        if n > limit:
            raise _too_large(os.fspath(path), n, limit, what)
        return (os.pread(fd, n, offset) if n > 0 else b""), st
    finally:
        os.close(fd)


def sha256_of(path: str | os.PathLike, limit: int, what: str = "such a file",
              follow_symlinks: bool = True) -> str:
    """The sha256 of a regular file of at most `limit` bytes, read in pieces (never held whole)."""
    h = hashlib.sha256()
    with opened(path, limit, what, follow_symlinks) as (f, _):
        for piece in iter(lambda: f.read(MIB), b""):
            h.update(piece)
    return h.hexdigest()
