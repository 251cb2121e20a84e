"""What every ImageNet reader yields: plain data a worker in another process can act on."""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..progress import Progress
from ..readfile import MAX_SOURCE_IMAGE, open_regular, read_with_stat

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")


@dataclass(frozen=True)
class SourceRef:
    """Where one image's bytes lie: a whole file, or a byte range of a bigger file (a tar)."""

    path: str
    offset: int = 0
    length: int = -1  # -1: up to the end of the file

    def read(self) -> bytes:
        """The image's bytes: the one place every source image is read (by every layout, in every
        worker). Only from a regular file, and at most MAX_SOURCE_IMAGE bytes (readfile.py): a FIFO
        or a symlink to /dev/zero in place of an image is an error for that image, not a hang."""
        return self.read_identified()[0]

    def read_identified(self) -> tuple[bytes, bytes]:
        """The image's bytes and the identity of what was read: a digest of the path, the byte
        range and the file's device, inode, size, modification and change times, taken from the
        file that was read. Any write to the file changes its change time (which no tool can set
        back), a replaced file has a new inode: the same identity means the same bytes, without
        hashing them (the cache's key: hashing every source's bytes costs a noticeable share of a build's CPU)."""
        data, st = read_with_stat(self.path, MAX_SOURCE_IMAGE, "a source image", self.offset, self.length)
        if self.length >= 0 and len(data) != self.length:
            raise OSError(f"{self.path}: expected {self.length} bytes at offset {self.offset}, "
                          f"found {len(data)} (truncated file?)")
        identity = (f"{self.path}\0{self.offset}\0{self.length}\0{st.st_dev}\0{st.st_ino}\0{st.st_size}"
                    f"\0{st.st_mtime_ns}\0{st.st_ctime_ns}")
        return data, hashlib.sha256(identity.encode("utf-8", "surrogateescape")).digest()

    def prefetch(self) -> None:
        """Ask the kernel to start reading these bytes now (POSIX_FADV_WILLNEED) and return at once,
        so that `read` later finds them in the page cache. Only a hint: errors are `read`'s to
        report, and where there is no posix_fadvise this does nothing."""
        if not hasattr(os, "posix_fadvise"):
            return
        try:
            fd = open_regular(self.path)  # (a FIFO would block a plain open)
        except OSError:
            return
        try:
            os.posix_fadvise(fd, self.offset, max(self.length, 0), os.POSIX_FADV_WILLNEED)
        except OSError:
            pass
        finally:
            os.close(fd)

    def __str__(self) -> str:
        return self.path if self.length < 0 else f"{self.path}[{self.offset}:+{self.length}]"


@dataclass(frozen=True)
class SourceImage:
    """One image of the ImageNet copy: its ILSVRC split ("train"/"val"), class and file name."""

    split: str
    wnid: str
    filename: str
    ref: SourceRef


class Source(ABC):
    """A reader for one ImageNet layout. Only the classes asked for are ever touched."""

    layout: str = "?"

    def __init__(self, root: Path):
        self.root = root

    def select(self, wnids: Iterable[str], progress: Progress) -> None:
        """Called once by the planner with every class it will ask for, before `images`.

        Layouts that must read everything in one pass (compressed shards) take what these classes
        need here, with a bar from `progress`; layouts that can seek use it to stop scanning early.
        The default does nothing.
        """

    def close(self) -> None:
        """Release what `select` made (a spill file). Also happens when the process ends."""

    @abstractmethod
    def images(self, wnid: str) -> Iterator[SourceImage]:
        """Every image of class `wnid`, train and val, in no particular order."""

    @abstractmethod
    def looked_in(self, wnid: str) -> str:
        """Where images of `wnid` were looked for, for error messages."""

    def describe(self) -> str:
        return f"{self.layout} at {self.root}"


def is_image_name(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES)
