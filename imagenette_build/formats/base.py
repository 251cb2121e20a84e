"""What every output format is to the build: images in, files under temporary names out, then
committed into place.

A format is one class with `add_root_file`, `add_image`, `close`, `commit` and `abort`, registered
in `formats/__init__.py`. The build hands each resized image (once, in member order) to every
format of its size, so one resize pass feeds them all; it puts the files `close` returns in place
with `commit`, lists each in SHA256SUMS and MD5SUMS and in the build report. What a format says of
its names (`final_names`, `owns`) and of its entry in the report (`top_level`, `still_in_place`)
lets the build check the names before it writes and keep an earlier build's entry in the report.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from ..labels import Labels
from ..outputs import create_new, new_dir, partial_path, remove_any, sync_dir
from ..plan import PlanImages, PlannedImage

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
    shard_bytes: int = SHARD_BYTES
    images: PlanImages | None = None  # every image the outputs will hold (formats whose names depend on them all)


class Output(ABC):
    format: str = "?"
    folder: bool = False  # what `final_name` is: a folder (of shards) or one file
    top_level_fields: tuple[str, ...] = ()  # what `top_level` sets in the report

    def __init__(self, ctx: Context):
        self.ctx = ctx

    def add_root_file(self, name: str, data) -> None:
        """A file at the dataset's root (the noisy-labels CSV): formats that carry the labels in
        each sample ignore it."""

    @abstractmethod
    def add_image(self, img: PlannedImage, data: bytes) -> None:
        """One image, in member order."""

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
        return path.startswith(name + "/") if cls.folder else path == name

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


class Shards(Output):
    """A folder of shards per split (`<split>-NNNNN-of-NNNNN.<ext>`), at most `shard_bytes` of images
    each, written in a temporary folder beside the final one and renamed into place as a whole."""

    suffix = "?"  # the folder is <stem>-<suffix>/
    ext = "?"
    folder = True

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        self._tmp = partial_path(self.final)
        new_dir(self._tmp)
        self._shards: dict[str, list[Path]] = {}  # split -> temporary shard files, in order
        self._files: list[OutputFile] = []
        self._split: str | None = None
        self._bytes = 0
        self._closed = False

    @classmethod
    def final_name(cls, stem: str) -> str:
        return f"{stem}-{cls.suffix}"

    def add_image(self, img: PlannedImage, data: bytes) -> None:
        if img.split != self._split or (self._bytes and self._bytes + len(data) > self.ctx.shard_bytes):
            self._end_shard()
            self._split = img.split
            number = len(self._shards.setdefault(img.split, []))
            path = self._tmp / f".{img.split}-{number:05d}.{self.ext}"
            self._shards[img.split].append(path)
            self._start_shard(path)
            self._bytes = 0
        self._write(img, data)
        self._bytes += len(data)

    @abstractmethod
    def _start_shard(self, path: Path) -> None: ...

    @abstractmethod
    def _write(self, img: PlannedImage, data: bytes) -> None: ...

    @abstractmethod
    def _finish_shard(self) -> tuple[int, str, str]:
        """Close the shard being written: (bytes, sha256, md5)."""

    def _end_shard(self) -> None:
        if self._split is not None:
            size, sha256, md5 = self._finish_shard()
            path = self._shards[self._split][-1]
            self._files.append(OutputFile(path.name, size, sha256, md5))
            self._split = None

    def shard_name(self, split: str, number: int, total: int) -> str:
        return f"{split}-{number:05d}-of-{total:05d}.{self.ext}"

    def close(self) -> list[OutputFile]:
        self._end_shard()
        by_temp = {f.path: f for f in self._files}
        out = []
        for split, paths in self._shards.items():
            for number, path in enumerate(paths):
                name = self.shard_name(split, number, len(paths))
                os.replace(path, self._tmp / name)
                f = by_temp[path.name]
                out.append(OutputFile(f"{self.final.name}/{name}", f.bytes, f.sha256, f.md5))
        sync_dir(self._tmp)
        self._closed = True
        return out

    def commit(self) -> None:
        """The old folder (an earlier build's) is moved aside, the new one renamed in, the old one
        removed: at every instant the final name holds a complete folder or nothing. If the new one
        cannot be renamed in, the old one is put back. (The build refused anything but a folder at
        the final name; a symlink swapped in since is moved as a link, and never removed through.)"""
        old = partial_path(self.final.with_name(self.final.name + ".old"))  # a stale one is removed by a later run
        moved = os.path.lexists(self.final)
        if moved:
            remove_any(old)  # (left by a dead process whose pid this one has now)
            os.replace(self.final, old)
        try:
            os.replace(self._tmp, self.final)
        except OSError:
            if moved:
                try:
                    os.replace(old, self.final)
                except OSError:
                    pass
            raise
        if moved and os.path.isdir(old) and not os.path.islink(old):
            shutil.rmtree(old, ignore_errors=True)

    def abort(self) -> None:
        if not self._closed and self._split is not None:
            self._discard_shard()
            self._split = None
        shutil.rmtree(self._tmp, ignore_errors=True)

    def _discard_shard(self) -> None:
        """Close the shard being written without finishing it (its folder is then removed)."""
