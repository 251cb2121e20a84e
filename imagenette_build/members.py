"""Per-member sha256 lists, in `sha256sum` format with paths relative to the archive's top folder.

Two kinds: the list a build writes beside each archive (`<stem>.members.sha256`, named with its own
sha256 in the build report), so that `verify` can name a changed member without the sources; and
the lists of published archives, shipped beside the manifests that declare them (`[[published]]
members = ...`), so that `verify` can say how many members are the published images. After
`tar xzf`, `cd <stem> && sha256sum -c ../<stem>.members.sha256` checks the extracted files.

Lines are written and read as coreutils writes and reads them (`sums.sums_line`,
`sums.sums_lines`: the one parser of sums files): a name holding a backslash, newline or
carriage return is escaped and its line starts with a backslash.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from .errors import UserError, cannot
from .limits import MAX_LIST_BYTES, MAX_MEMBERS, MAX_NAME_BYTES
from .safewrite import SidecarFile
from .sums import sums_line, sums_lines
from .readfile import read_bytes

SUFFIX = ".members.sha256"


def sidecar_name(stem: str) -> str:
    return f"{stem}{SUFFIX}"


def format_line(digest: str, relpath: str) -> str:
    return sums_line(digest, relpath)


def parse(text: str, where: str) -> dict[str, str]:
    """{relpath: lowercase hex digest}, read as `sha256sum -c` reads the list (`sums.sums_lines`:
    `./train/x.JPEG` is `train/x.JPEG`); a line it cannot read or a path listed twice is a
    one-line UserError naming `where` and the line. A path longer than a member name may be, or
    more paths than an archive may have members (`limits`), are refused."""
    out: dict[str, str] = {}
    try:
        for lineno, name, digest in sums_lines(text, 64):
            if (size := len(name.encode())) > MAX_NAME_BYTES:
                raise UserError(f"{where} line {lineno}: a path of {size:,} bytes, longer than a member name may be "
                                f"({MAX_NAME_BYTES:,})")
            if name in out:
                raise UserError(f"{where} line {lineno}: {name!r} is listed twice")
            if len(out) == MAX_MEMBERS:
                raise UserError(f"{where}: more than {MAX_MEMBERS:,} members listed, more than an archive verify reads")
            out[name] = digest
    except ValueError as exc:
        raise UserError(f"{where} {exc}") from None
    return out


def read(path: Path) -> tuple[dict[str, str], str]:
    """A member list from a file (a regular file of at most MAX_LIST_BYTES, UTF-8), and the
    file's own sha256."""
    try:
        data = read_bytes(path, MAX_LIST_BYTES, "a member list")
    except OSError as exc:
        raise cannot(path, "read", exc, UserError) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text file") from None
    return parse(text, str(path)), hashlib.sha256(data).hexdigest()


class Writer(SidecarFile):
    """The sidecar of an archive being written: lines added as members are packed, under a
    temporary name until `commit`."""

    def __init__(self, final_path: Path, tmp_path: Path):
        super().__init__(final_path, tmp_path)
        self.count = 0

    def add(self, relpath: str, digest: str) -> None:
        self.put(format_line(digest, relpath))
        self.count += 1
