"""File lists: the CSV of a `files` manifest that names every image of the dataset and its split.

One reader, `read_file_list`: a header with a `path` column of `<split>/<wnid>/<file>` (the
published lists, like noisy_imagenette.csv, carry more columns). Every mistake is a one-line
`UserError` naming the file and line. The list is read row by row: a list of every ImageNet-1k
image is fine, and only the listed images are held.
"""

from __future__ import annotations

import csv
import io
import re
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path

from .errors import UserError, cannot
from .readfile import opened

# Names that end up as archive members or file names: no separators, no dot-only names.
SAFE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
MAX_LIST_LINE = 1 << 16  # characters in one line of a file list (a real row has about 100)
MAX_FILE_LIST = 4 << 30  # bytes; read row by row (every image of ImageNet-1k, 7 columns: ~140 MB)


@dataclass(frozen=True)


class ListedImage:
    """One image a `files` manifest lists: it goes to `<split>/<wnid>/<filename>` in the archive."""

    __slots__ = ("split", "wnid", "filename")  # a list may hold millions
    split: str
    wnid: str
    filename: str

    @property
    def member(self) -> str:
        return f"{self.split}/{self.wnid}/{self.filename}"


def read_file_list(path: Path, splits: tuple[str, ...], wnids: set[str]) -> list[ListedImage]:
    """Read and check a file list: a CSV with a `path` column of `<split>/<wnid>/<file>`.

    The published lists carry more columns (noisy labels, `is_valid`); when `is_valid` is there it
    must agree with the split, which catches a list whose columns were shuffled. Read row by row:
    only the listed images are held, never the file's text or its rows.
    """
    try:
        with opened(path, MAX_FILE_LIST, "a file list") as (raw, _):
            text = io.TextIOWrapper(io.BufferedReader(raw), encoding="utf-8-sig", newline="")
            return _read_list_rows(path, csv.reader(_list_lines(path, text), strict=True), splits, wnids)
    except FileNotFoundError:
        raise UserError(f"{path}: file list not found") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text file") from None
    except OSError as exc:
        raise cannot(path, "read", exc, UserError) from None
    except csv.Error as exc:
        raise UserError(f"{path}: not a valid CSV file: {exc}") from None


def _list_lines(path: Path, text: io.TextIOWrapper) -> Iterator[str]:
    """The lines of a file list, none longer than MAX_LIST_LINE (one line is never held whole)."""
    for number in count(1):
        line = text.readline(MAX_LIST_LINE + 1)
        if not line:
            return
        if len(line) > MAX_LIST_LINE:
            raise UserError(f"{path} line {number}: longer than {MAX_LIST_LINE:,} characters; not a file list")
        yield line


def _read_list_rows(path: Path, reader: Iterator[list[str]], splits: tuple[str, ...],
                    wnids: set[str]) -> list[ListedImage]:
    header = next(reader, None)
    if not header or "path" not in header:
        got = ",".join(header)[:80] if header else "an empty file"
        raise UserError(f"{path}: the first line must be a header with a 'path' column, got {got!r}")
    if len(set(header)) != len(header):
        raise UserError(f"{path}: the header names a column twice")
    path_col = header.index("path")
    valid_col = header.index("is_valid") if "is_valid" in header else None

    out: list[ListedImage] = []
    seen: dict[str, int] = {}  # file name -> its index in `out` (unique names make unique members)
    lines = array("L")  # the line of each image in `out`, for messages
    names: dict[str, str] = {}  # one copy of each split and class name, however many rows repeat it
    for lineno, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise UserError(f"{path} line {lineno}: {len(row)} columns, the header has {len(header)}")
        member = row[path_col]
        parts = member.split("/")
        if len(parts) != 3 or not all(SAFE_NAME_RE.match(p) for p in parts):
            raise UserError(f"{path} line {lineno}: path {member!r} is not <split>/<wnid>/<file>")
        split, wnid, filename = parts
        if split not in splits:
            raise UserError(f"{path} line {lineno}: split {split!r} of {member!r} is not one of "
                            f"{', '.join(splits)}")
        if wnid not in wnids:
            raise UserError(f"{path} line {lineno}: class {wnid} of {member!r} is not among the manifest's classes")
        if valid_col is not None:
            flag = row[valid_col]
            if flag not in ("True", "False"):
                raise UserError(f"{path} line {lineno}: is_valid must be True or False, not {flag!r}")
            if (flag == "True") != (split == "val"):
                raise UserError(f"{path} line {lineno}: is_valid={flag} disagrees with the split of {member!r}")
        first = seen.get(filename)
        if first is not None:
            what = f"{member} is" if out[first].member == member else f"image {filename} is"
            raise UserError(f"{path} line {lineno}: {what} listed twice (first on line {lines[first]})")
        seen[filename] = len(out)
        lines.append(lineno)
        out.append(ListedImage(names.setdefault(split, split), names.setdefault(wnid, wnid), filename))
    if not out:
        raise UserError(f"{path}: the file list has a header but no images")
    return out
