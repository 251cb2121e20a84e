"""The manifest's tables beside its classes and split: `[source]` (where its class list comes from)
and `[[published]]` (the uploads `verify` knows), and the key checks every table of the loader uses.

Every mistake is a one-line `UserError` naming the file and the table (docs/manifest.md).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from .errors import UserError
from .filelist import SAFE_NAME_RE
from .published import Published, with_shipped_checksums

SOURCE_KEYS = {"url", "file", "commit", "paper", "note"}
PUBLISHED_KEYS = {"archive", "uploaded", "size", "md5", "md5_first_mib", "sha256", "members", "root_files"}
_URL_RE = re.compile(r"^https?://[^\s/]+\S*$")
_COMMIT_RE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")  # a git object name: SHA-1 or SHA-256
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def shown(value: Any) -> str:
    """A manifest's value in a message: a list or table by its kind only (the repr of one nested
    5,000 deep by dotted table headers raised RecursionError), anything else clipped."""
    if isinstance(value, (list, dict)):
        return "(a list)" if isinstance(value, list) else "(a table)"
    return repr(value) if len(repr(value)) <= 100 else f"{repr(value)[:100]}..."


def check_keys(where: str, table: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise UserError(f"{where}: unknown key {shown(unknown[0])} (known: {', '.join(sorted(known))})")


def get(where: str, table: dict[str, Any], key: str, kind: type | tuple[type, ...], required: bool = True):
    if key not in table:
        if required:
            raise UserError(f"{where}: missing key {key!r}")
        return None
    value = table[key]
    # bool is an int in Python; a TOML `true` is never a valid number here.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float, (int, float))):
        kind_name = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise UserError(f"{where}: {key!r} must be a {kind_name}, not {type(value).__name__}")
    return value


@dataclass(frozen=True)
class ListSource:
    """Where a manifest's class list comes from: the public file that holds it (repository `url`,
    `file` in it, `commit` read), the `paper` that uses it, and a `note` (which part of the file)."""

    url: str
    file: str = ""
    commit: str = ""
    paper: str = ""
    note: str = ""

    def to_json(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if v}

    def location(self) -> str:
        """`url file @ commit` (the commit shortened to 12 digits), as one line."""
        return " ".join(x for x in (self.url, self.file) if x) + (f" @ {self.commit[:12]}" if self.commit else "")


def parse_source(where: str, table: Any) -> ListSource | None:
    """`[source]`: optional; when given, `url` is required and every value is one line of text (the
    `classes --manifests` listing prints each on a line)."""
    if table is None:
        return None
    here = f"{where} [source]"
    if not isinstance(table, dict):
        raise UserError(f"{here}: must be a table (url, file, commit, paper, note)")
    check_keys(here, table, SOURCE_KEYS)
    values = {k: get(here, table, k, str, required=k == "url") or "" for k in sorted(SOURCE_KEYS)}
    for key, value in values.items():
        if _CONTROL_RE.search(value):
            raise UserError(f"{here}: {key} holds a line break or another control character; give one line")
    if not _URL_RE.match(values["url"]):
        raise UserError(f"{here}: url {shown(values['url'])} must be an http:// or https:// address")
    if values["commit"] and not _COMMIT_RE.match(values["commit"]):
        raise UserError(f"{here}: commit {shown(values['commit'])} must be a full git commit hash "
                        "(40 or 64 lowercase hex digits)")
    return ListSource(**values)


def parse_published(where: str, table: Any) -> Published:
    if not isinstance(table, dict):
        raise UserError(f"{where}: must be a table")
    check_keys(where, table, PUBLISHED_KEYS)
    size = get(where, table, "size", int, required=False)
    members = get(where, table, "members", str, required=False) or ""
    if members and not SAFE_NAME_RE.match(members):
        raise UserError(f"{where}: members {shown(members)} must be a plain file name beside the manifest")
    root_files = get(where, table, "root_files", list, required=False)
    if root_files is not None and not all(isinstance(r, str) and SAFE_NAME_RE.match(r) for r in root_files):
        raise UserError(f"{where}: root_files must be a list of plain file names")
    return with_shipped_checksums(Published(
        archive=get(where, table, "archive", str),
        uploaded=get(where, table, "uploaded", str),
        size=size,
        md5=get(where, table, "md5", str, required=False) or "",
        md5_first_mib=get(where, table, "md5_first_mib", str, required=False) or "",
        sha256=get(where, table, "sha256", str, required=False) or "",
        members=members,
        root_files=tuple(root_files) if root_files is not None else None,
    ))
