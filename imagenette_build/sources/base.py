"""What every ImageNet reader yields: plain data a worker in another process can act on."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")


@dataclass(frozen=True)
class SourceRef:
    """Where one image's bytes lie: a whole file, or a byte range of a bigger file (a tar)."""

    path: str
    offset: int = 0
    length: int = -1  # -1: up to the end of the file

    def read(self) -> bytes:
        with open(self.path, "rb") as f:
            if self.offset:
                f.seek(self.offset)
            data = f.read() if self.length < 0 else f.read(self.length)
        if self.length >= 0 and len(data) != self.length:
            raise OSError(f"{self.path}: expected {self.length} bytes at offset {self.offset}, "
                          f"found {len(data)} (truncated file?)")
        return data

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
