"""The spill file: where images read from a layout that cannot be seeked into are put for the build.

A gzip-compressed shard cannot be read at an offset, and a parquet row is not a byte range of its
file, so the images a build needs are copied, in one pass, into one plain file; each image is then
an ordinary `SourceRef(spill file, offset, length)` that any worker process can read.

The spill lives in a fresh folder `imagenette-build-spill-*` under $IMAGENETTE_BUILD_TMPDIR if set,
else the system temporary folder. It is removed when the process that made it ends (normally or by
an error or Ctrl-C: `atexit`), or earlier by `close()`. On a cluster, $IMAGENETTE_BUILD_TMPDIR must be
a folder the workers can read at the same path. A process killed with SIGKILL cannot clean up; its
folder is left behind and may be deleted by hand.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from array import array
from collections.abc import Iterator
from pathlib import Path

from .. import settings
from ..errors import DataError, UserError, why
from .base import SourceImage, SourceRef

TMPDIR_ENV = settings.ENV["tmpdir"]


def spill_parent() -> Path:
    configured = settings.current().tmpdir
    if configured is None:
        return Path(tempfile.gettempdir())
    if not configured.is_dir():
        raise UserError(f"{TMPDIR_ENV}={configured}: no such folder (it holds the images read from "
                        "compressed shards during a build)")
    return configured


class Spill:
    """An append-only file of image bytes, removed with its folder when the process ends."""

    def __init__(self, tag: str):
        parent = spill_parent()
        try:
            self.folder = Path(tempfile.mkdtemp(prefix=f"imagenette-build-spill-{tag}-", dir=parent))
        except OSError as exc:
            raise UserError(f"{parent}: cannot make the spill folder: {why(exc)}; "
                            f"set {TMPDIR_ENV} to a writable folder") from None
        self.path = self.folder / "images.bin"
        self._owner = os.getpid()
        atexit.register(self.remove)
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed by finish()/remove()
        self.size = 0
        # What `add` spilled, per class, compactly: "split\0filename\0" in one bytearray, and
        # offset, length pairs in one array (~50 bytes an image; ~370 as SourceImage objects).
        self._names: dict[str, bytearray] = {}
        self._ranges: dict[str, array] = {}

    def add(self, split: str, wnid: str, filename: str, data: bytes) -> None:
        """Spill one image of class `wnid`; `images(wnid)` gives it back."""
        offset, length = self.append(data)
        self._names.setdefault(wnid, bytearray()).extend(f"{split}\0{filename}\0".encode("utf-8", "surrogateescape"))
        self._ranges.setdefault(wnid, array("q")).extend((offset, length))

    def images(self, wnid: str) -> Iterator[SourceImage]:
        """The images `add` spilled for `wnid`, in the order they came, as byte ranges of this file."""
        names = self._names.get(wnid)
        if names is None:
            return
        parts = names.decode("utf-8", "surrogateescape").split("\0")
        ranges = self._ranges[wnid]
        path = str(self.path)
        for i in range(len(ranges) // 2):
            yield SourceImage(parts[2 * i], wnid, parts[2 * i + 1], SourceRef(path, ranges[2 * i], ranges[2 * i + 1]))

    def append(self, data: bytes) -> tuple[int, int]:
        """Write one image; its (offset, length) in the spill file."""
        offset = self.size
        try:
            self._file.write(data)
        except OSError as exc:
            self.remove()
            raise DataError(f"{self.path}: cannot write the spill file ({why(exc)}); it needs "
                            f"room for every image the build takes; set {TMPDIR_ENV} to a bigger disk") from None
        self.size += len(data)
        return offset, len(data)

    def finish(self) -> None:
        """Done writing: flush, so workers in other processes see every byte."""
        if self._file is not None and not self._file.closed:
            try:
                self._file.close()
            except OSError as exc:
                self.remove()
                raise DataError(f"{self.path}: cannot write the spill file ({why(exc)})") from None

    def remove(self) -> None:
        if os.getpid() != self._owner:  # a forked worker inherits atexit handlers: not its folder
            return
        if self._file is not None and not self._file.closed:
            try:
                self._file.close()
            except OSError:
                pass
        shutil.rmtree(self.folder, ignore_errors=True)
        atexit.unregister(self.remove)
