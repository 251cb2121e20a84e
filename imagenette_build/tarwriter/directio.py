"""O_DIRECT writes for full-size archives, and the filesystem type that decides them.

A full-size archive, as big as the sources, is written with O_DIRECT on a local disk's filesystem
(`DirectFile`, `direct_io_wanted`; $IMAGENETTE_BUILD_DIRECT_IO=0 turns that off, =1 asks for it on
any filesystem that takes it): the page cache would only have copied it on its way to the disk.
"""

from __future__ import annotations

import errno
import mmap
import os
import re
from pathlib import Path

from .. import settings

# Where full-size archives get O_DIRECT by default: filesystems on a local block device, where a
# direct write goes from the buffer to the disk. Network, cluster and FUSE filesystems (nfs, cifs,
# lustre, gpfs, ceph, sshfs...) and tmpfs keep the page cache: on the first each direct write waits
# for a server, which was not measured; on tmpfs there is no disk.
DIRECT_FILESYSTEMS = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs"})
MOUNTINFO = "/proc/self/mountinfo"
DIRECT_ALIGN = 4096  # O_DIRECT writes: address, length and file offset multiples of this
DIRECT_BUFFER = 8 << 20  # archive bytes gathered per O_DIRECT write


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
    $IMAGENETTE_BUILD_DIRECT_IO (the run's `settings`: "0" no, "1" yes), else ("auto") when the
    folder's filesystem is one of DIRECT_FILESYSTEMS."""
    setting = settings.current().direct_io
    if setting in ("0", "1"):
        return setting == "1"
    return filesystem_type(folder) in DIRECT_FILESYSTEMS


class DirectFile:
    """A write-only file that bypasses the page cache (O_DIRECT, Linux), for full-size archives.

    Written through the page cache, a full-size archive costs kernel time copying the bytes into the
    cache and writing them back; with O_DIRECT the disk reads them from this process's buffer. The
    bytes are gathered in an aligned buffer and written DIRECT_BUFFER at a time; the last, unaligned
    piece is written after O_DIRECT is turned off for the file. Used where `direct_io_wanted` says
    so; where the filesystem refuses O_DIRECT all the same (tmpfs before Linux 6.6, with the
    variable at 1) `open` gives None and the caller writes as usual; where it refuses one write
    (another alignment), this file goes on without O_DIRECT. The bytes written are the same either
    way. Not thread-safe: one thread writes, then another may close.
    """

    def __init__(self, fd: int):
        self.fd = fd
        self.direct = True
        self._buf = mmap.mmap(-1, DIRECT_BUFFER)  # page-aligned
        self._fill = 0

    @classmethod
    def open(cls, path: Path, same_as: int) -> DirectFile | None:
        """`path`, the file open as `same_as`, opened again for writing with O_DIRECT; None where that
        is not available or not wanted (`direct_io_wanted`), or when `path` is no longer that file
        (its name is guessable: a symlink put there since would have had the archive written through
        it, into another file; the caller goes on with its own descriptor)."""
        if not hasattr(os, "O_DIRECT") or not direct_io_wanted(path.parent):
            return None
        try:
            fd = os.open(path, os.O_WRONLY | os.O_DIRECT | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:  # EINVAL: the filesystem does not do direct I/O; ELOOP: a symlink
            return None
        opened, wanted = os.fstat(fd), os.fstat(same_as)
        if (opened.st_dev, opened.st_ino) != (wanted.st_dev, wanted.st_ino):
            os.close(fd)
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
