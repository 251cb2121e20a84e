"""The published uploads of the fastai archives: what `verify` compares an archive with.

One table holds the size and checksums of every upload, `published_archives.csv` among the shipped
facts (`shipped`): a row per archive and upload date, also for archives of datasets without a
manifest (imagewang, the first imagenette). A manifest's `[[published]]` entry names an upload by
archive and upload date and adds what is not in the table: the files at that upload's root and the
sha256 list of its members; the size and checksums come from the table's row.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from .errors import UserError, cannot
from .shipped import read_shipped


TABLE = "published_archives.csv"


@dataclass(frozen=True)
class Published:
    archive: str
    uploaded: str
    size: int | None
    md5: str
    md5_first_mib: str
    sha256: str
    members: str = ""  # a file beside the manifest: the sha256 of each member (`members.py` format)
    root_files: tuple[str, ...] | None = None  # the files this upload had at its root; None: the manifest's


def read_published(text: str, where: str = TABLE) -> list[Published]:
    """The table of published uploads: archive,uploaded,size_bytes,md5,md5_first_mib,sha256."""
    rows = []
    for lineno, row in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        try:
            size = int(row["size_bytes"]) if row.get("size_bytes") else None
            rows.append(Published(row["archive"], row["uploaded"], size, (row.get("md5") or "").lower(),
                                  (row.get("md5_first_mib") or "").lower(), (row.get("sha256") or "").lower()))
        except (KeyError, ValueError, TypeError):
            raise UserError(f"{where} line {lineno}: not an archive,uploaded,size_bytes,md5,md5_first_mib,sha256 row") from None
    return rows


@lru_cache(maxsize=None)
def shipped_uploads() -> tuple[Published, ...]:
    return tuple(read_published(read_shipped(TABLE)))


def with_shipped_checksums(entry: Published) -> Published:
    """A manifest's entry with the size and checksums it leaves out taken from the shipped table's
    row of the same archive and upload date (if there is one)."""
    row = next((r for r in shipped_uploads() if (r.archive, r.uploaded) == (entry.archive, entry.uploaded)), None)
    if row is None:
        return entry
    return replace(entry, size=row.size if entry.size is None else entry.size, md5=entry.md5 or row.md5,
                   md5_first_mib=entry.md5_first_mib or row.md5_first_mib, sha256=entry.sha256 or row.sha256)


def published_uploads(csv_path: Path | None, own: tuple[Published, ...] = ()) -> list[Published]:
    """The shipped table (or `csv_path`), each upload once: a manifest's [[published]] entry takes the
    place of the table's row for the same archive and upload date (it carries that row's checksums
    and adds its root files and member list), and uploads the table lacks come last."""
    if csv_path is None:
        rows = list(shipped_uploads())
    else:
        try:
            rows = read_published(csv_path.read_text("utf-8"), str(csv_path))
        except OSError as exc:
            raise cannot(csv_path, "read", exc, UserError) from None
    own = {(p.archive, p.uploaded): p for p in own}  # (a manifest's [[published]])
    merged = [own.pop((r.archive, r.uploaded), r) for r in rows]
    return merged + list(own.values())
