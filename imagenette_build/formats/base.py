"""What every output format is to the build: images in, files under temporary names out, then
committed into place.

A format is one class with `add_root_file`, `add_image`, `close`, `commit` and `abort`, registered
in `formats/__init__.py`. The build hands each resized image (once, in member order) to every
format of its size, so one resize pass feeds them all; it puts the files `close` returns in place
with `commit`, lists each in SHA256SUMS and MD5SUMS and in the build report. What a format says of
its names (`final_names`, `owns`) and of its entry in the report (`top_level`, `still_in_place`)
lets the build check the names before it writes and keep an earlier build's entry in the report.
Its documents (`document_names`: the dataset card, Croissant metadata, the contact sheet) are
written by `add_documents` under temporary names and put in place with the rest of the output.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from ..labels import Labels
from ..safewrite import create_new
from ..plan import PlanImages, PlannedImage
from ..provenance import Origin

SHARD_BYTES = 256 << 20  # the images a shard holds, at most (a single larger image gets a shard of its own)
_PLAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")  # a shard's name in its folder
_HEX = {"sha256": re.compile(r"^[0-9a-f]{64}$"), "md5": re.compile(r"^[0-9a-f]{32}$")}


@dataclass(frozen=True)
class OutputFile:
    """One finished file: its path below --out and its digests."""

    path: str
    bytes: int
    sha256: str
    md5: str

    def to_json(self) -> dict:
        return {"path": self.path, "bytes": self.bytes, "sha256": self.sha256, "md5": self.md5}


@dataclass(frozen=True)
class Context:
    out: Path
    stem: str  # imagenette2-160
    size: int | None  # None: full size
    mtime: int  # every file's modification time inside the outputs (SOURCE_DATE_EPOCH)
    labels: Labels | None  # class indices, names and noisy labels (formats that carry them)
    shard_size: int = SHARD_BYTES
    images: PlanImages | None = None  # every image the outputs will hold (formats whose names depend on them all)
    recipe: dict | None = None  # the report's options.recipe (None: full size), for the provenance's `recipe`


class Output(ABC):
    format: str = "?"
    folder: bool = False  # what `final_name` is: a folder (of shards) or one file
    carries_labels: bool = False  # its samples hold class indices and noisy labels (`Context.labels`)
    top_level_fields: tuple[str, ...] = ()  # what `top_level` sets in the report

    def __init__(self, ctx: Context):
        self.ctx = ctx

    def add_root_file(self, name: str, data) -> None:
        """A file at the dataset's root (the noisy-labels CSV): formats that carry the labels in
        each sample ignore it."""

    @abstractmethod
    def add_image(self, img: PlannedImage, data: bytes, origin: Origin) -> None:
        """One image, in member order, with its provenance (`provenance.fields`: every format
        keeps it)."""

    @abstractmethod
    def close(self) -> list[OutputFile]:
        """Finish every file under its temporary name (synced)."""

    @abstractmethod
    def commit(self) -> None:
        """Put the finished files in place (renames)."""

    @abstractmethod
    def abort(self) -> None:
        """Remove what was written; safe at any point, any number of times."""

    def describe(self) -> dict:
        """What the build report says of this output, besides its files."""
        return {}

    @classmethod
    def document_names(cls, stem: str) -> dict[str, str]:
        """The documents this output carries for `stem`, {kind: path below --out}: kinds "card"
        (README.md), "croissant" (croissant.json), "preview" (the contact sheet, PNG)."""
        return {}

    def add_documents(self, docs: dict[str, bytes]) -> list[OutputFile]:
        """Write the documents (each kind of `document_names`) under temporary names, after
        `close`; `commit` puts them in place with the rest. Their files, for the sums and report."""
        if docs:
            raise ValueError(f"{self.format} carries no documents")
        return []

    @classmethod
    @abstractmethod
    def final_name(cls, stem: str) -> str:
        """The name of the file or folder this format puts in place for `stem`."""

    @classmethod
    def final_names(cls, stem: str) -> list[tuple[str, bool]]:
        """Every name this format puts in place for `stem`, and whether it is a folder."""
        return [(cls.final_name(stem), cls.folder)]

    @classmethod
    def owns(cls, stem: str, path: str) -> bool:
        """Is `path` (below --out, as the sums files name it) its file, or in its folder?"""
        name = cls.final_name(stem)
        return path.startswith(name + "/") if cls.folder else path == name or path in cls.document_names(stem).values()

    @classmethod
    def _own_file(cls, stem: str, path) -> bool:
        """Is `path` a name this format gives a file: its file, or a plain name in its folder?"""
        if not isinstance(path, str) or not cls.owns(stem, path):
            return False
        return not cls.folder or bool(_PLAIN.match(path.partition("/")[2]))

    @classmethod
    def top_level(cls, entry: dict) -> dict:
        """What the report says at its top level of this output, from its entry in `outputs`."""
        return {}

    @classmethod
    def still_in_place(cls, out: Path, stem: str, entry) -> dict | None:
        """An earlier build's report entry for this output, if its files are still on disk as it
        describes them (each one this format's, a regular file of the size it says, in a real
        folder), else None. The entry comes from a file anyone could have written: anything odd in
        it is None, never an exception."""
        files = entry.get("files") if isinstance(entry, dict) else None
        if not isinstance(files, list) or not files:
            return None
        if cls.folder and (entry.get("folder") != cls.final_name(stem)
                           or not _is_real(out / cls.final_name(stem), stat.S_ISDIR)):
            return None
        for f in files:
            if not (isinstance(f, dict) and cls._own_file(stem, f.get("path")) and type(f.get("bytes")) is int
                    and all(isinstance(f.get(k), str) and rx.match(f[k]) for k, rx in _HEX.items())
                    and _is_real(out / f["path"], stat.S_ISREG, f["bytes"])):
                return None
        return entry

    @property
    def final(self) -> Path:
        """The file or folder this output puts in place."""
        return self.ctx.out / self.final_name(self.ctx.stem)


def _is_real(path: Path, kind, size: int | None = None) -> bool:
    """`path` is of that kind itself (not a symlink to it), and of `size` bytes when given."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return kind(st.st_mode) and (size is None or st.st_size == size)


def write_file(path: Path, data: bytes) -> tuple[int, str, str]:
    """`data` as a new file at `path` (synced, never through a symlink): its (bytes, sha256, md5);
    nothing is left there if it fails."""
    f = HashingFile(path)
    try:
        f.write(data)
        return f.close()
    except BaseException:
        f.discard()
        raise


class HashingFile:
    """A file written afresh (never through a symlink) and hashed as it is written."""

    def __init__(self, path: Path):
        self.path = path
        self._f = open(create_new(path), "wb")
        self._sha256 = hashlib.sha256()
        self._md5 = hashlib.md5()
        self.size = 0

    def write(self, data) -> int:
        self._f.write(data)
        self._sha256.update(data)
        self._md5.update(data)
        self.size += len(data)
        return len(data)

    # what a file-like sink is asked for (pyarrow writes Parquet through these)
    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._f.flush()

    @property
    def closed(self) -> bool:
        return self._f.closed

    def writable(self) -> bool:
        return True

    def close(self) -> tuple[int, str, str]:
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        return self.size, self._sha256.hexdigest(), self._md5.hexdigest()

    def discard(self) -> None:
        try:
            self._f.close()
        except OSError:
            pass
