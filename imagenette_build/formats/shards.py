"""The folders of shards that the parquet and webdataset formats write: which image goes in which
shard, in what order, and how the shards are written.

Order. Within a split, samples are sorted by `order_key`: the first 8 bytes of the sha256 of
`<seed>:<member path>` as a big-endian number (equal numbers in member order), seed `SEED`. The
tgz's member order puts a class's images one after another, so a loader's shuffle buffer (the
shards are read front to back) held one class at a time; this order mixes them. It is a function
of each member's path alone: the same on every run, --jobs, backend, layout and Pillow, and an image
left out (--skip-broken) leaves the others in the same order.

Shards. A split of n images is cut, in that order, into max(min(n, MIN_SHARDS), ceil(image bytes /
shard_size)) runs of equal image counts (as equal as integers allow); a run holding more than
shard_size of images is cut again the same way, into ceil(its bytes / shard_size) runs, until none
does or it holds a single image (`shard_counts`). WebDataset gives each DataLoader worker, and each
node, whole shards (round robin), as Hugging Face's streaming datasets do: a split needs at least
as many shards as workers, and equal shards end the workers' epochs together.

Writing. The build hands the images over once, in member order, and only `close` knows every image
written (with --skip-broken some never come). So each image's record (what the format writes for
it) is appended to a spool file in the temporary folder as it comes, with 20 bytes an image kept in
memory (split, key, record and image size); `close` writes each shard reading its records from the
spool in order, then removes the spool. Disk: the shards' bytes once more, until `close`.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import struct
from abc import abstractmethod
from pathlib import Path

import numpy as np

from ..plan import PlannedImage
from ..provenance import Origin
from ..safewrite import create_new, new_dir, partial_path, put_in_place, remove_any, sync_dir
from .base import Context, Output, OutputFile, write_file

SEED = 0  # of the samples' order (`order_key`); the report names it
MIN_SHARDS = 8  # shards a split is cut into, at least (one an image in a split of fewer)
ORDER = ("within each split, samples sorted by the first 8 bytes of sha256('<seed>:<member path>') "
         "as a big-endian number (equal ones in member order)")
CUTS = (f"each split cut, in that order, into max(min(images, {MIN_SHARDS}), ceil(image bytes / max_image_bytes)) "
        "shards of equal image counts; one holding more than max_image_bytes cut again the same way, until none "
        "does or it holds one image")
SPOOL = ".spool"  # in the temporary folder: the records in the order they came
_ROW = struct.Struct("<IQII")  # split, order key, record bytes, image bytes
_ROWS = np.dtype([("split", "<u4"), ("key", "<u8"), ("record", "<u4"), ("image", "<u4")])


def order_key(member: str, seed: int = SEED) -> int:
    """The number a member's sample is sorted by within its split."""
    digest = hashlib.sha256(f"{seed}:{member}".encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big")


def shard_counts(sizes, max_bytes: int, minimum: int = MIN_SHARDS) -> list[int]:
    """How many images each shard of a split holds, in order, for images of these byte `sizes` in
    the order written (the module's docstring says how)."""
    n = len(sizes)
    ends = np.zeros(n + 1, np.int64)
    np.cumsum(np.asarray(sizes, np.int64), out=ends[1:])

    def runs(start: int, stop: int, parts: int) -> list[tuple[int, int]]:
        width = stop - start
        return [(start + width * i // parts, start + width * (i + 1) // parts) for i in range(parts)]

    todo = runs(0, n, min(n, max(minimum, -(-int(ends[-1]) // max_bytes))))[::-1] if n else []
    counts = []
    while todo:
        start, stop = todo.pop()
        held = int(ends[stop] - ends[start])
        if held <= max_bytes or stop - start == 1:
            counts.append(stop - start)
        else:
            todo += runs(start, stop, min(stop - start, -(-held // max_bytes)))[::-1]
    return counts


class Shards(Output):
    """A folder of shards per split (`<split>-NNNNN-of-NNNNN.<ext>`), written in a temporary folder
    beside the final one and renamed into place as a whole. A format gives each image's record
    (`_record`) and writes records into a shard (`_start_shard`, `_write`, `_finish_shard`)."""

    suffix = "?"  # the folder is <stem>-<suffix>/
    ext = "?"
    folder = True
    carries_labels = True

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        self._tmp = partial_path(self.final)
        new_dir(self._tmp)
        self._spool = os.fdopen(create_new(self._tmp / SPOOL), "wb")
        self._index = bytearray()
        self._splits: dict[str, int] = {}  # split -> its number, in the order the splits came
        self._writing = False  # a shard is open (in `close`)
        self._closed = False

    @classmethod
    def final_name(cls, stem: str) -> str:
        return f"{stem}-{cls.suffix}"

    def add_image(self, img: PlannedImage, data: bytes, origin: Origin) -> None:
        record = self._record(img, data, origin)
        split = self._splits.setdefault(img.split, len(self._splits))
        self._index += _ROW.pack(split, order_key(img.member), len(record), len(data))
        self._spool.write(record)

    @abstractmethod
    def _record(self, img: PlannedImage, data: bytes, origin: Origin) -> bytes:
        """What the shard holds of this image and its provenance, as `_write` takes it back."""

    @abstractmethod
    def _start_shard(self, path: Path) -> None: ...

    @abstractmethod
    def _write(self, record: bytes) -> None: ...

    @abstractmethod
    def _finish_shard(self) -> tuple[int, str, str]:
        """Close the shard being written: (bytes, sha256, md5)."""

    def shard_name(self, split: str, number: int, total: int) -> str:
        return f"{split}-{number:05d}-of-{total:05d}.{self.ext}"

    def close(self) -> list[OutputFile]:
        self._spool.close()
        rows = np.frombuffer(bytes(self._index), _ROWS)
        starts = np.cumsum(rows["record"], dtype=np.int64) - rows["record"]
        spool = self._tmp / SPOOL
        fd = os.open(spool, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        out = []
        try:
            for split, number in self._splits.items():
                mine = np.flatnonzero(rows["split"] == number)
                order = mine[np.argsort(rows["key"][mine], kind="stable")]
                counts = shard_counts(rows["image"][order], self.ctx.shard_size)
                first = 0
                for i, count in enumerate(counts):
                    name = self.shard_name(split, i, len(counts))
                    self._start_shard(self._tmp / name)
                    self._writing = True
                    for at, length in zip(starts[order[first:first + count]].tolist(),
                                          rows["record"][order[first:first + count]].tolist()):
                        record = os.pread(fd, length, at)
                        if len(record) != length:
                            raise OSError(errno.EIO, "shorter than what was written to it", str(spool))
                        self._write(record)
                    size, sha256, md5 = self._finish_shard()
                    self._writing = False
                    out.append(OutputFile(f"{self.final.name}/{name}", size, sha256, md5))
                    first += count
        finally:
            os.close(fd)
        os.unlink(spool)
        sync_dir(self._tmp)
        self._closed = True
        return out

    @classmethod
    def document_names(cls, stem: str) -> dict[str, str]:
        return {"card": f"{cls.final_name(stem)}/README.md", "preview": f"{cls.final_name(stem)}/preview.png"}

    def add_documents(self, docs: dict[str, bytes]) -> list[OutputFile]:
        """Into the temporary folder: they take their final names with it."""
        names = self.document_names(self.ctx.stem)
        out = []
        for kind, data in docs.items():
            path = names[kind]
            out.append(OutputFile(path, *write_file(self._tmp / path.partition("/")[2], data)))
        sync_dir(self._tmp)
        return out

    def describe(self) -> dict:
        return {"order": {"seed": SEED, "how": ORDER},
                "shards": {"min_per_split": MIN_SHARDS, "max_image_bytes": self.ctx.shard_size, "how": CUTS}}

    def commit(self) -> None:
        """The new folder takes the final name in one step (`safewrite.put_in_place`: exchanged with
        an earlier build's folder, which is then removed), so at every instant the final name holds
        a complete folder. (The build refused anything but a folder at the final name; a symlink
        swapped in since is exchanged as a link, and never removed through.)"""
        old = put_in_place(self._tmp, self.final, replace=True)
        if old is not None:
            remove_any(old)

    def abort(self) -> None:
        if not self._closed and self._writing:
            self._discard_shard()
            self._writing = False
        try:
            self._spool.close()
        except OSError:
            pass
        shutil.rmtree(self._tmp, ignore_errors=True)

    def _discard_shard(self) -> None:
        """Close the shard being written without finishing it (its folder is then removed)."""

