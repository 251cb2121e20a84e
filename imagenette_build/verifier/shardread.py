"""Reading one shard as rows, safely and in bounded memory: a parquet shard row group by row group
(each one's declared size checked before it is read), a WebDataset shard as a plain tar stream
(`archive_reader`, every bound of a .tgz) grouped into samples. Each reader hashes the whole file
(`digests`), yields `Row`s, and leaves a broken file's reason in `problem`, never an exception."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..archive_bytes import RAW_CHUNK, Digests, HashingReader
from ..archive_reader import ArchiveStream, clip
from ..errors import UserError, why
from ..provenance import FIELDS as PROVENANCE
from ..limits import MAX_MEMBER_BYTES, MAX_MEMBERS, MAX_PARQUET_FOOTER_BYTES, MAX_ROW_GROUP_BYTES, \
    MAX_SAMPLE_META_BYTES
from ..readfile import open_regular
from .checking import BATCH_IMAGES
from .report import FirstFew

WDS_FIELDS = ("jpg", "cls", "json")  # a sample's members, as `formats.webdataset` writes them
_PLAIN_ENCODINGS = {"PLAIN", "RLE", "BIT_PACKED"}  # no dictionary: a value's bytes are stored once, as read


@dataclass
class Row:
    """One image of a shard and what the shard says of it, as stored (any type: checked by the
    scan). `where`: the row's place in the shard, for messages."""

    where: str
    data: bytes | None
    member: object  # its path in the .tgz (parquet `image.path`, the WebDataset JSON's `member`)
    wnid: object
    label: object
    split: object = None  # WebDataset: the JSON's
    name: object = None  # WebDataset: the JSON's class name
    cls: object = None  # WebDataset: the .cls, as an int when it is one
    problem: str | None = None  # the row cannot be read (then the rest is None)
    too_large: int | None = None  # its image's size, when more than a member may have (not read)
    provenance: dict | None = None  # its provenance columns or JSON fields (`provenance.FIELDS`); None: it has none


class ShardReader:
    """`for row in reader.rows()`, then `problem`, `complete` (every row was read), `digests`."""

    problem: str | None = None
    complete = False
    digests: Digests | None = None

    def __init__(self, path: Path):
        self.path = path
        self.bad = FirstFew()  # a WebDataset shard's members that are not part of a sample
        self.unsafe = FirstFew()

    def rows(self) -> Iterator[Row]:
        raise NotImplementedError


def _cannot_read(path: Path, exc: OSError) -> UserError:
    return UserError(f"{path}: cannot read: {why(exc)}")


class ParquetReader(ShardReader):
    """A parquet shard as the build writes it: `image` {bytes, path}, `label`, `wnid`, the
    provenance columns, uncompressed and without dictionaries, read a batch of rows at a time."""

    _provenance = False  # it has the provenance columns (as strings)

    def rows(self) -> Iterator[Row]:
        try:  # the `parquet` extra: `verify` needs it only here
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise UserError(f"{self.path}: verifying parquet shards needs pyarrow: "
                            "pip install 'imagenette-build[parquet]'") from None

        with os.fdopen(open_regular(self.path, follow_symlinks=False), "rb") as f:
            raw = HashingReader(f)
            try:
                raw.drain()
            except OSError as exc:
                raise _cannot_read(self.path, exc) from None
            self.digests = raw.digests()
            try:
                f.seek(0)
                footer = self._footer_problem(f, self.digests.size)
                if footer:
                    self.problem = footer
                    return
                # pre_buffer off and a buffered stream: a row group's columns are read a page at a time
                pf = pq.ParquetFile(f, pre_buffer=False, buffer_size=RAW_CHUNK)
                self.problem = _schema_problem(pa, pf.schema_arrow)
                if self.problem:
                    return
                schema = pf.schema_arrow
                # shards of an earlier version have no provenance columns: then none is checked
                self._provenance = all(schema.get_field_index(f) >= 0 and schema.field(f).type == pa.string()
                                       for f in PROVENANCE)
                for i in range(pf.metadata.num_row_groups):
                    self.problem = _row_group_problem(pf.metadata.row_group(i), i, self.digests.size)
                    if self.problem:
                        return
                    yield from self._row_group(pf, i)
                self.complete = True
            except Exception as exc:  # pyarrow's (ArrowInvalid, OSError, ...): the file's, whose every byte was read
                why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                self.problem = f"not a readable parquet file: {clip(why)}"

    def _row_group(self, pf, i: int) -> Iterator[Row]:
        n = 0
        extra = list(PROVENANCE) if self._provenance else []
        for batch in pf.iter_batches(batch_size=BATCH_IMAGES, row_groups=[i], columns=["image", "label", "wnid", *extra],
                                     use_threads=False):
            image = batch.column("image")
            images = image.field("bytes").to_pylist()
            paths, valid = image.field("path").to_pylist(), image.is_valid().to_pylist()
            origins = batch.select(extra).to_pylist() if extra else [None] * len(images)
            for data, path, ok, label, wnid, origin in zip(images, paths, valid, batch.column("label").to_pylist(),
                                                           batch.column("wnid").to_pylist(), origins):
                where = f"row group {i} row {n}"
                n += 1
                if not ok or data is None:
                    yield Row(where, None, path, wnid, label, problem="no image bytes")
                elif len(data) > MAX_MEMBER_BYTES:
                    yield Row(where, None, path, wnid, label, too_large=len(data), provenance=origin)
                else:
                    yield Row(where, data, path, wnid, label, provenance=origin)
            del images, batch  # not held while the next batch is read

    @staticmethod
    def _footer_problem(f, size: int) -> str | None:
        """Before pyarrow reads the footer whole: the magic, and the footer's declared length."""
        head = f.read(4)
        if size < 12 or head != b"PAR1":
            return "not a parquet file (no PAR1 at its start)"
        f.seek(size - 8)
        tail = f.read(8)
        f.seek(0)
        if tail[4:] != b"PAR1":
            what = "an encrypted footer" if tail[4:] == b"PARE" else "no PAR1 at its end: truncated?"
            return f"not a parquet file this tool writes ({what})"
        length = int.from_bytes(tail[:4], "little")
        if length > size - 12:
            return f"its footer declares {length:,} bytes, more than the file holds ({size:,} bytes): truncated?"
        if length > MAX_PARQUET_FOOTER_BYTES:
            return f"its footer declares {length:,} bytes, more than the {MAX_PARQUET_FOOTER_BYTES:,} verify reads"
        return None


def _schema_problem(pa, schema) -> str | None:
    """The columns read, of the types the build writes (`formats.parquet`)."""
    wanted = {"image": pa.struct([("bytes", pa.binary()), ("path", pa.string())]), "label": pa.int64(),
              "wnid": pa.string()}
    for name, kind in wanted.items():
        i = schema.get_field_index(name)
        if i < 0:
            return f"not a shard this tool writes: no column {name}"
        if schema.field(i).type != kind:
            return f"not a shard this tool writes: column {name} is {clip(str(schema.field(i).type))}, not {kind}"
    return None


def _row_group_problem(rg, i: int, file_size: int) -> str | None:
    """What a row group declares, checked before it is read: its size and rows, and columns stored
    as the build stores them (uncompressed, no dictionary: what is decoded is what the file holds)."""
    if not 0 <= rg.total_byte_size <= MAX_ROW_GROUP_BYTES:
        return (f"row group {i} declares {rg.total_byte_size:,} bytes, more than the {MAX_ROW_GROUP_BYTES:,} "
                "verify reads of one")
    if not 0 <= rg.num_rows <= MAX_MEMBERS:
        return f"row group {i} declares {rg.num_rows:,} rows, more than the {MAX_MEMBERS:,} verify reads"
    for c in range(rg.num_columns):
        col = rg.column(c)
        what = f"row group {i} column {clip(col.path_in_schema)}"
        if col.compression != "UNCOMPRESSED" or not set(col.encodings) <= _PLAIN_ENCODINGS:
            return (f"not a shard this tool writes: {what} is stored {col.compression} "
                    f"({', '.join(col.encodings)}), not uncompressed and plain")
        start = col.data_page_offset
        if not (0 <= start and 0 <= col.total_compressed_size <= MAX_ROW_GROUP_BYTES
                and start + col.total_compressed_size <= file_size and col.num_values == rg.num_rows):
            return f"{what} declares {col.total_compressed_size:,} bytes of {col.num_values:,} values at offset " \
                   f"{start:,}, not within the file ({file_size:,} bytes) or not one a row"
    return None


class WebDatasetReader(ShardReader):
    """A WebDataset shard: a plain tar of samples, each `<key>.jpg`, `<key>.cls`, `<key>.json`
    (`formats.webdataset`), grouped as the loaders group them (consecutive members of one key)."""

    def rows(self) -> Iterator[Row]:
        with ArchiveStream(self.path, gzip=False, follow_symlinks=False) as stream:
            key, fields = None, {}
            for entry in stream.entries():
                if entry.unsafe:
                    self.unsafe.append(f"{entry.name} ({entry.unsafe})")
                    continue
                head, slash, base = entry.path.rpartition("/")
                stem, _, field = base.partition(".")  # the loaders' split: at the base name's first dot
                this = head + slash + stem
                if this != key and key is not None:
                    yield _sample(key, fields)
                    fields = {}
                key = this
                if entry.kind != "file" or field not in WDS_FIELDS or field in fields:
                    why = ("stored twice" if field in fields else f"a {entry.kind}" if entry.kind != "file"
                           else "not a sample's .jpg, .cls or .json")
                    self.bad.append(f"{entry.name} ({why})")
                elif entry.too_large:
                    fields[field] = entry.size  # (its size: the bytes were never read)
                else:
                    fields[field] = entry.data
                del entry
            if key is not None:
                yield _sample(key, fields)
            if stream.io_error:
                raise UserError(stream.io_error)
            self.problem, self.complete, self.digests = stream.problem, stream.complete, stream.digests()


def _sample(key: str, fields: dict) -> Row:
    """A sample's row from its members (`cls` an int when the .cls is one)."""
    image, cls, meta = (fields.get(f) for f in WDS_FIELDS)
    missing = [f".{f}" for f in WDS_FIELDS if f not in fields]
    if missing:
        return Row(key, None, None, None, None, problem=f"no {' or '.join(missing)}")
    if isinstance(meta, int) or isinstance(cls, int) or len(meta) > MAX_SAMPLE_META_BYTES or \
            len(cls) > MAX_SAMPLE_META_BYTES:
        return Row(key, None, None, None, None, problem=f"a .json or .cls of more than {MAX_SAMPLE_META_BYTES:,} bytes")
    try:
        meta = json.loads(meta.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, nested too deep, a 5,000-digit number
        return Row(key, None, None, None, None, problem=f"its .json is not JSON ({clip(str(exc))})")
    if not isinstance(meta, dict):
        return Row(key, None, None, None, None, problem="its .json is not a JSON object")
    text = cls.decode("ascii", "replace").strip()
    number = int(text) if re.fullmatch(r"-?[0-9]{1,18}", text) else text
    row = Row(key, None, meta.get("member"), meta.get("wnid"), meta.get("label"), meta.get("split"),
              meta.get("name"), number, provenance={f: meta.get(f) for f in PROVENANCE} if "member_sha256" in meta else None)
    if isinstance(image, int):
        row.too_large = image
    else:
        row.data = image
    return row
