"""Where every member came from: one row per image member, the same values in every output.

The .tgz has them as `<stem>.provenance.csv` beside it (`Writer`, streamed in member order, one row
held at a time); the parquet shards as columns and the WebDataset JSON as fields (`fields`, with the
names of `card.COLUMNS`). `read` is verify's reader of the CSV (bounded: a line at a time, and what it
holds).

`source_split` is read from the ILSVRC-2012 file name, as `leakage.origin` reads it (`train`,
`val`, or `unknown` for a renamed copy: never guessed); `source_file` is that name, which every
reader keeps (docs/datasets.md).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from .errors import UserError, cannot
from .leakage import TRAIN, VAL, origin
from .limits import MAX_LIST_BYTES, MAX_MEMBERS, MAX_NAME_BYTES
from .plan import PlannedImage
from .readfile import open_regular
from .safewrite import SidecarFile

SUFFIX = ".provenance.csv"
FIELDS = ("source_split", "source_file", "source_sha256", "member", "member_sha256")  # card.COLUMNS' names
COLUMNS = ("member", "split", "wnid", "source_split", "source_file", "source_sha256", "member_sha256", "recipe")
MAX_LINE_BYTES = 4 * MAX_NAME_BYTES + 1024  # a row: two names, a split, a WNID, two digests, the recipe
_SPLITS = {TRAIN: "train", VAL: "val"}


class Origin(NamedTuple):
    """What the worker learnt of a member: the sha256 of the source bytes it read, and of the
    member's bytes (the same for a full-size member)."""

    source_sha256: str
    member_sha256: str


def sidecar_name(stem: str) -> str:
    return f"{stem}{SUFFIX}"


def source_split(filename: str) -> str:
    """`train`, `val` or `unknown`: the ILSVRC-2012 split an image of that file name came from."""
    return _SPLITS.get(origin(filename), "unknown")


def fields(img: PlannedImage, where: Origin) -> dict[str, str]:
    """The provenance of one member, as the parquet columns and WebDataset JSON fields hold it."""
    name = img.member.rpartition("/")[2]
    return {"source_split": source_split(name), "source_file": name, "source_sha256": where.source_sha256,
            "member": img.member, "member_sha256": where.member_sha256}


def recipe_text(size: int | None, recipe_json: dict | None) -> str:
    """The `recipe` column: how a resized member was made, or `original bytes` for a full-size one."""
    if size is None or recipe_json is None:
        return "original bytes"
    r = recipe_json
    return (f"{size} px short side, {r['filter']}, JPEG quality {r['quality']}, rounding {r['rounding']}, "
            f"decode {r['decode']}")


def _line(values) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue()


class Writer(SidecarFile):
    """`<stem>.provenance.csv` of an archive being written: a row as each member is packed, under
    a temporary name until `commit`."""

    def __init__(self, final_path: Path, tmp_path: Path, recipe: str):
        super().__init__(final_path, tmp_path)
        self.recipe = recipe
        self.rows = 0
        self.put(_line(COLUMNS))

    def add(self, img: PlannedImage, where: Origin) -> None:
        f = fields(img, where)
        self.put(_line((img.member, img.split, img.wnid, f["source_split"], f["source_file"], f["source_sha256"],
                        f["member_sha256"], self.recipe)))
        self.rows += 1

    def describe(self) -> dict:
        """The report's `provenance`."""
        return {"file": self.final_path.name, "sha256": self.sha256, "rows": self.rows}


def rows(path: Path, digest=None) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) of a provenance CSV, read a line at a time, each line's bytes added to
    `digest` (a hashlib object) when given: a line longer than a row may be, more rows than an
    archive may have members, a header that is not COLUMNS, a row of another width or a line that
    is not UTF-8 is a one-line UserError naming the file and the line."""
    try:
        f = os.fdopen(open_regular(path), "rb")
    except OSError as exc:
        raise cannot(path, "read", exc, UserError) from None
    with f:
        lineno = 0
        while True:
            try:
                raw = f.readline(MAX_LINE_BYTES + 1)
            except OSError as exc:
                raise cannot(path, "read", exc, UserError) from None
            if not raw:
                break
            lineno += 1
            if lineno > MAX_MEMBERS + 1:
                raise UserError(f"{path}: more than {MAX_MEMBERS:,} rows, more than an archive verify reads has "
                                "members")
            if digest is not None:
                digest.update(raw)
            if len(raw) > MAX_LINE_BYTES or not raw.endswith(b"\n"):
                what = f"longer than {MAX_LINE_BYTES:,} bytes" if len(raw) > MAX_LINE_BYTES else "cut short"
                raise UserError(f"{path} line {lineno}: {what}")
            try:
                values = next(csv.reader([raw[:-1].decode("utf-8")]), [])
            except (UnicodeDecodeError, csv.Error):
                raise UserError(f"{path} line {lineno}: not a row of UTF-8 CSV") from None
            if lineno == 1:
                if tuple(values) != COLUMNS:
                    raise UserError(f"{path} line 1: not the header of a provenance file ({','.join(COLUMNS)})")
                continue
            if len(values) != len(COLUMNS):
                raise UserError(f"{path} line {lineno}: {len(values)} values, not the {len(COLUMNS)} of its header")
            yield lineno, dict(zip(COLUMNS, values))
        if lineno == 0:
            raise UserError(f"{path}: empty, not a provenance file")


def read(path: Path) -> tuple[dict[str, str], str]:
    """{member: member_sha256} of a provenance CSV, and the file's own sha256; a member listed
    twice, or more names and digests than a member list may hold (MAX_LIST_BYTES), is a UserError
    naming the line."""
    out: dict[str, str] = {}
    digest = hashlib.sha256()
    held = 0
    for lineno, row in rows(path, digest):
        member, member_sha256 = row["member"], row["member_sha256"][:64]
        if member in out:
            raise UserError(f"{path} line {lineno}: {member!r} is listed twice")
        held += len(member) + len(member_sha256)
        if held > MAX_LIST_BYTES:
            raise UserError(f"{path} line {lineno}: more than {MAX_LIST_BYTES:,} bytes of names and digests, more "
                            "than verify holds")
        out[member] = member_sha256
    return out, digest.hexdigest()
