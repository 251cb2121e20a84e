"""Hugging Face-ready Parquet shards: `<stem>-parquet/<split>-NNNNN-of-NNNNN.parquet`.

The schema of the Imagenette datasets on the Hugging Face Hub: `image` ({bytes, path}) and `label`
(a class index), with the `datasets` feature metadata in the schema (`huggingface` key), so that
`load_dataset("parquet", data_files=...)` gives an `Image(mode="RGB")` column and a `ClassLabel`
with the manifest's class names; plus `wnid`, where the dataset has them the noisy labels as
`ClassLabel`s too, and the provenance columns (`provenance.FIELDS`, strings). The image bytes are the tgz member's (a grayscale JPEG stays one); `mode` has
`datasets` decode every image to RGB, so that a batch of them stacks. Rows are in the seeded order
of `shards.order_key` (classes mixed), in at least 8 shards a split (`shards`). pyarrow writes it
(the `parquet` extra); with the same pyarrow version and inputs the bytes are the same (no
compression: JPEG bytes do not shrink; no statistics).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError
from ..plan import PlannedImage
from ..provenance import FIELDS, Origin, fields
from .base import Context, HashingFile
from .shards import Shards

ROW_GROUP_BYTES = 32 << 20  # image bytes buffered before a row group is written


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise UserError("--format parquet needs pyarrow: pip install 'imagenette-build[parquet]'") from None
    return pyarrow


class ParquetShards(Shards):
    format = "parquet"
    suffix = "parquet"
    ext = "parquet"

    def __init__(self, ctx: Context):
        self.pa = _pyarrow()
        super().__init__(ctx)
        labels = ctx.labels
        names = [c.name for c in labels.classes]
        self.columns = labels.columns
        pa = self.pa
        fields = [("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                  ("label", pa.int64()), ("wnid", pa.string())] + [(c, pa.int64()) for c in self.columns] \
            + [(f, pa.string()) for f in FIELDS]
        features = {"image": {"_type": "Image", "mode": "RGB"}, "label": {"names": names, "_type": "ClassLabel"},
                    "wnid": {"dtype": "string", "_type": "Value"}}
        features.update({c: {"names": names, "_type": "ClassLabel"} for c in self.columns})
        features.update({f: {"dtype": "string", "_type": "Value"} for f in FIELDS})
        meta = {b"huggingface": json.dumps({"info": {"features": features}}).encode()}
        self.schema = pa.schema(fields, metadata=meta)
        self._rows: list[tuple] = []
        self._row_bytes = 0
        self._writer = None
        self._file: HashingFile | None = None

    @classmethod
    def document_names(cls, stem: str) -> dict[str, str]:
        return {**super().document_names(stem), "croissant": f"{cls.final_name(stem)}/croissant.json"}

    def _start_shard(self, path: Path) -> None:
        self._file = HashingFile(path)
        self._writer = self.pa.parquet.ParquetWriter(
            self._file, self.schema, compression="none", use_dictionary=False, write_statistics=False)

    def _record(self, img: PlannedImage, data: bytes, origin: Origin) -> bytes:
        cls, noisy = self.ctx.labels.of(img.member, img.split, img.wnid)
        where = fields(img, origin)
        row = [img.member, cls.index if cls else -1, img.wnid, *(noisy.get(c, -1) for c in self.columns),
               *(where[f] for f in FIELDS)]
        return json.dumps(row).encode() + b"\n" + data  # (JSON escapes every line break)

    def _write(self, record: bytes) -> None:
        row, _, data = record.partition(b"\n")
        member, *labels = json.loads(row)
        self._rows.append(({"bytes": data, "path": member}, *labels))
        self._row_bytes += len(data)
        if self._row_bytes >= ROW_GROUP_BYTES:
            self._flush()

    def _flush(self) -> None:
        if self._rows:
            columns = list(zip(*self._rows))
            table = self.pa.table([self.pa.array(list(col), type=f.type) for col, f in zip(columns, self.schema)],
                                  schema=self.schema)
            self._writer.write_table(table)
            self._rows, self._row_bytes = [], 0

    def _finish_shard(self) -> tuple[int, str, str]:
        self._flush()
        self._writer.close()
        return self._file.close()

    def _discard_shard(self) -> None:
        self._rows = []
        try:  # (else pyarrow closes it when collected, writing to the closed file)
            self._writer.close()
        except Exception:
            pass
        self._file.discard()

    def describe(self) -> dict:
        return {**super().describe(), "columns": [f.name for f in self.schema], "pyarrow": self.pa.__version__}
