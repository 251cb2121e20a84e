"""WebDataset shards: `<stem>-wds/<split>-NNNNN-of-NNNNN.tar`, one sample per image.

Each sample is three members sharing a key: `<key>.jpg` (the image bytes), `<key>.cls` (the class
index, ASCII) and `<key>.json` (WNID, name, split, class index and the noisy labels). Samples are
in member order; shards hold at most `shard_bytes` of images. `webdataset.WebDataset` and Hugging
Face's `load_dataset("webdataset", ...)` read them as they are. Tar headers are made by
`pack.tar_header`, so the bytes are those of the inputs alone.

The key (`sample_key`) is the member path without its extension
(`train/n01440764/n01440764_10026`). Both loaders split a name into key and field at the first dot
of its base name, so a key must have none: any character but ASCII letters, digits, '_', '-' and
the '/' between folders is written as %XX of its UTF-8 bytes (`n01440764_10744.v2.JPEG` gives
`n01440764_10744%2Ev2`), which no two names share. Two members that differ only in their extension
(`x.JPEG` beside `x.jpeg`) would share a key: each then ends in `~` and its escaped extension
(`x~JPEG`, `x~jpeg`). So keys are unique, and a function of the member list alone, whatever the
shards and the order of the samples. When any key of the dataset was escaped or extended, every
sample's JSON also holds `member`, the member's path as in the tgz (every sample: Hugging Face
takes the fields of the first few samples for all of them).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..pack.tarformat import BLOCK, RECORD, tar_header
from ..plan import PlannedImage
from .base import Context, HashingFile, OutputFile, Shards

_ESCAPED = re.compile(r"[^A-Za-z0-9_-]")  # in a key: everything else is %XX, '~' and '%' included
_PLAIN_PATH = re.compile(r"^[A-Za-z0-9_/-]*$")


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
    them all, once. `with_member`: some key is not simply the member's path without its extension
    (the JSON then says the member). Holds 8 bytes a member while it is made; two paths with the same
    8-byte digest are taken as shared: their keys get the extension too, still unique."""

    def __init__(self, members: Iterable[str]):
        digests, escaped = bytearray(), False
        for member in members:
            path, _ = _split(member)
            digests += _digest(path).to_bytes(8, "little")
            escaped = escaped or not _PLAIN_PATH.match(path)
        values, counts = np.unique(np.frombuffer(bytes(digests), "<u8"), return_counts=True)
        self._shared = {int(v) for v in values[counts > 1]}
        self.with_member = escaped or bool(self._shared)

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

    def _member(self, name: str, data: bytes) -> None:
        self._put(tar_header(name, len(data), self.ctx.mtime))
        self._put(data)
        pad = -len(data) % BLOCK
        if pad:
            self._put(b"\0" * pad)

    def _put(self, data: bytes) -> None:
        self._file.write(data)
        self._tar_bytes += len(data)

    def _write(self, img: PlannedImage, data: bytes) -> None:
        key = self._key(img.member)
        self._keys += hashlib.blake2b(key.encode(), digest_size=16).digest()
        cls, noisy = self.ctx.labels.of(img.member, img.split, img.wnid)
        meta = {"wnid": img.wnid, "name": cls.name if cls else None, "split": img.split,
                "label": cls.index if cls else None, **noisy}
        if self._key.with_member:
            meta["member"] = img.member
        self._member(f"{key}.jpg", data)
        self._member(f"{key}.cls", str(cls.index if cls else -1).encode())
        self._member(f"{key}.json", json.dumps(meta, sort_keys=True).encode())

    def close(self) -> list[OutputFile]:
        keys = np.frombuffer(bytes(self._keys), "V16")
        if len(np.unique(keys)) != len(keys):  # (sample_key makes this impossible: tested)
            raise RuntimeError(f"internal error: two samples of {self.final} have the same key; nothing was "
                               "put in place (please report this)")
        return super().close()

    def _finish_shard(self) -> tuple[int, str, str]:
        end = 2 * BLOCK + (-(self._tar_bytes + 2 * BLOCK) % RECORD)
        self._put(b"\0" * end)
        return self._file.close()

    def _discard_shard(self) -> None:
        self._file.discard()
