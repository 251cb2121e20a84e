"""WebDataset shards: `<stem>-wds/<split>-NNNNN-of-NNNNN.tar`, one sample per image.

Each sample is three members sharing a key: `<key>.jpg` (the image bytes), `<key>.cls` (the class
index, ASCII) and `<key>.json` (WNID, name, split, class index, the noisy labels, and the
provenance: `member`, the member's path as in the tgz, and `provenance.fields`). Samples are in the seeded order of `shards.order_key` (classes mixed),
in at least 8 shards a split (`shards`). `webdataset.WebDataset` and Hugging Face's
`load_dataset("webdataset", ...)` read them as they are. Tar headers are made by `tarwriter.tar_header`,
so the bytes are those of the inputs alone.

The key (`sample_key`) is the member path without its extension
(`train/n01440764/n01440764_10026`). Both loaders split a name into key and field at the first dot
of its base name, so a key must have none: any character but ASCII letters, digits, '_', '-' and
the '/' between folders is written as %XX of its UTF-8 bytes (`n01440764_10744.v2.JPEG` gives
`n01440764_10744%2Ev2`), which no two names share. Two members that differ only in their extension
(`x.JPEG` beside `x.jpeg`) would share a key: each then ends in `~` and its escaped extension
(`x~JPEG`, `x~jpeg`). So keys are unique, and a function of the member list alone, whatever the
shards and the order of the samples.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..tarwriter.tarformat import BLOCK, RECORD, tar_header
from ..plan import PlannedImage
from ..provenance import Origin, fields
from .base import Context, HashingFile, OutputFile
from .shards import Shards

_ESCAPED = re.compile(r"[^A-Za-z0-9_-]")  # in a key: everything else is %XX, '~' and '%' included


def _escape(text: str) -> str:
    return _ESCAPED.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode("utf-8", "surrogatepass")), text)


def _split(member: str) -> tuple[str, str | None]:
    """(the member's path without its extension, the extension; None when its base name has none)."""
    head, slash, base = member.rpartition("/")
    stem, _, ext = base.rpartition(".")
    return (head + slash + stem, ext) if stem and ext else (member, None)


def sample_key(member: str, shares_path: bool) -> str:
    """The sample's key: the member's path without its extension, each folder and the name escaped;
    `shares_path`: another member has the same path without extension (then the extension is added)."""
    path, ext = _split(member)
    key = "/".join(_escape(part) for part in path.split("/"))
    return f"{key}~{_escape(ext or '')}" if shares_path else key


def _digest(path: str) -> int:
    return int.from_bytes(hashlib.blake2b(path.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


class SampleKeys:
    """The key of each member of a dataset (`sample_key`), which depends on every member: made from
    them all, once. Holds 8 bytes a member while it is made; two paths with the same 8-byte digest
    are taken as shared: their keys get the extension too, still unique."""

    def __init__(self, members: Iterable[str]):
        digests = bytearray()
        for member in members:
            digests += _digest(_split(member)[0]).to_bytes(8, "little")
        values, counts = np.unique(np.frombuffer(bytes(digests), "<u8"), return_counts=True)
        self._shared = {int(v) for v in values[counts > 1]}

    def __call__(self, member: str) -> str:
        return sample_key(member, _digest(_split(member)[0]) in self._shared)


class WebDatasetShards(Shards):
    format = "webdataset"
    suffix = "wds"
    ext = "tar"

    _file: HashingFile | None = None

    def __init__(self, ctx: Context):
        self._key = SampleKeys(ctx.images.members() if ctx.images is not None else ())
        super().__init__(ctx)
        self._keys = bytearray()  # a 16-byte digest of every key written, to prove them unique at `close`

    def _start_shard(self, path: Path) -> None:
        self._file = HashingFile(path)
        self._tar_bytes = 0

    def _record(self, img: PlannedImage, data: bytes, origin: Origin) -> bytes:
        key = self._key(img.member)
        self._keys += hashlib.blake2b(key.encode(), digest_size=16).digest()
        cls, noisy = self.ctx.labels.of(img.member, img.split, img.wnid)
        meta = {"wnid": img.wnid, "name": cls.name if cls else None, "split": img.split,
                "label": cls.index if cls else None, **noisy, **fields(img, origin)}
        return b"".join((_member(f"{key}.jpg", data, self.ctx.mtime),
                         _member(f"{key}.cls", str(cls.index if cls else -1).encode(), self.ctx.mtime),
                         _member(f"{key}.json", json.dumps(meta, sort_keys=True).encode(), self.ctx.mtime)))

    def _write(self, record: bytes) -> None:
        self._file.write(record)
        self._tar_bytes += len(record)

    def close(self) -> list[OutputFile]:
        keys = np.frombuffer(bytes(self._keys), "V16")
        if len(np.unique(keys)) != len(keys):  # (sample_key makes this impossible: tested)
            raise RuntimeError(f"internal error: two samples of {self.final} have the same key; nothing was "
                               "put in place (please report this)")
        return super().close()

    def _finish_shard(self) -> tuple[int, str, str]:
        self._write(b"\0" * (2 * BLOCK + (-(self._tar_bytes + 2 * BLOCK) % RECORD)))
        return self._file.close()

    def _discard_shard(self) -> None:
        self._file.discard()


def _member(name: str, data: bytes, mtime: int) -> bytes:
    """A tar member: its header, its bytes, padded to the block."""
    return tar_header(name, len(data), mtime) + data + b"\0" * (-len(data) % BLOCK)
