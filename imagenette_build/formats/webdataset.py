"""WebDataset shards: `<stem>-wds/<split>-NNNNN-of-NNNNN.tar`, one sample per image.

Each sample is three members sharing a key, the member path without its extension
(`train/n01440764/n01440764_10026`): `<key>.jpg` (the image bytes), `<key>.cls` (the class index,
ASCII) and `<key>.json` (WNID, name, split, class index and the noisy labels). Samples are in member
order; shards hold at most `shard_bytes` of images. `webdataset.WebDataset` and Hugging Face's
`load_dataset("webdataset", ...)` read them as they are. Tar headers are made by `pack.tar_header`,
so the bytes are those of the inputs alone.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..pack.tarformat import BLOCK, RECORD, tar_header
from ..plan import PlannedImage
from .base import HashingFile, Shards


class WebDatasetShards(Shards):
    format = "webdataset"
    suffix = "wds"
    ext = "tar"

    _file: HashingFile | None = None

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
        key = img.member.rsplit(".", 1)[0] if "." in img.member.rsplit("/", 1)[-1] else img.member
        cls, noisy = self.ctx.labels.of(img.member, img.split, img.wnid)
        meta = {"wnid": img.wnid, "name": cls.name if cls else None, "split": img.split,
                "label": cls.index if cls else None, **noisy}
        self._member(f"{key}.jpg", data)
        self._member(f"{key}.cls", str(cls.index if cls else -1).encode())
        self._member(f"{key}.json", json.dumps(meta, sort_keys=True).encode())

    def _finish_shard(self) -> tuple[int, str, str]:
        end = 2 * BLOCK + (-(self._tar_bytes + 2 * BLOCK) % RECORD)
        self._put(b"\0" * end)
        return self._file.close()

    def _discard_shard(self) -> None:
        self._file.discard()
