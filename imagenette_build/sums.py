"""SHA256SUMS and MD5SUMS: read as GNU coreutils reads them, written in its canonical form, merged
line by line and never clobbered (each rewrite is `safewrite.atomic_write`). The one parser of sums
lines that the build, `verify`, `extract` and the member lists share."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import DataError, cannot
from .safewrite import atomic_write
from .readfile import MAX_TEXT_FILE, read_bytes

SUM_FILES = {"SHA256SUMS": 64, "MD5SUMS": 32}

# ---------------------------------------------------------------------------------- sums files
# Read as GNU coreutils' `sha256sum -c --strict` (md5sum) reads them (its digest.c, split_3), so that
# a line `sha256sum -c` checks is never one this tool skips: a lying line must fail here too.
_TAGS = {64: "SHA256", 32: "MD5"}  # the BSD tag of each digest (`sha256sum --tag`)
_DIGEST_AND_BLANK = re.compile(r"([^ \t]*)[ \t]")
_BSD_REST = re.compile(r"[ \t]*=[ \t]*([0-9a-fA-F]+)")
_HEX = re.compile(r"[0-9a-fA-F]+")
_UNESCAPES = {"\\\\": "\\", "\\n": "\n", "\\r": "\r"}


def sums_line(digest: str, name: str) -> str:
    """The canonical line of `name`, as `sha256sum` writes it: `<hash>  <name>`, and for a name
    holding a backslash, line feed or carriage return, those escaped and the line started with `\\`."""
    if any(c in name for c in "\\\n\r"):
        escaped = name.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
        return f"\\{digest}  {escaped}\n"
    return f"{digest}  {name}\n"


def sums_lines(text: str, digest_len: int) -> Iterator[tuple[int, str, str]]:
    """(line number, file name, lowercase hex digest) of each line of a sums file, read as coreutils
    reads it: `<hash>  <file>`, `<hash> *<file>`, BSD's `SHA256 (<file>) = <hash>` (`MD5 (...)`
    for 32-digit digests), BSD's reversed `<hash> <file>` (`md5 -r`; then every line), hex in either
    case, a leading `\\` for a name escaped with `\\\\`, `\\n` and `\\r`; blank lines and lines starting
    with `#` are skipped. Names are `normal_name`s. Any other line (one holding a NUL, where
    coreutils would cut the name) raises ValueError('line N: ...'). Lines are read one at a time
    (a list of them all would be a second copy of the text)."""
    reversed_format = None  # set by the first untagged line, as coreutils does
    start = lineno = 0
    while start < len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        line, start, lineno = text[start:end], end + 1, lineno + 1
        line = line[:-1] if line.endswith("\r") else line
        if line.startswith("#") or not line.strip(" \t"):
            continue
        try:
            name, digest, reversed_format = _split_line(line, digest_len, reversed_format)
        except ValueError as exc:
            raise ValueError(f"line {lineno}: {exc}") from None
        yield lineno, normal_name(name), digest.lower()


def _split_line(line: str, digest_len: int, reversed_format: bool | None) -> tuple[str, str, bool | None]:
    tag = _TAGS[digest_len]
    if "\0" in line:
        raise ValueError(_form(digest_len, "it holds a NUL"))
    i = len(line) - len(line.lstrip(" \t"))
    escaped = line.startswith("\\", i)
    i += escaped
    after_tag = i + len(tag) + line.startswith(" ", i + len(tag))
    if line.startswith(tag, i) and line.startswith("(", after_tag):
        rest = line[after_tag + 1:]
        close = rest.rfind(")")  # (the name is not escaped: it ends at the last ')')
        m = _BSD_REST.fullmatch(rest, close + 1) if close >= 0 else None
        if not m or len(m[1]) != digest_len or close == 0:  # (`SHA256 () = ...` names no file)
            raise ValueError(_form(digest_len))
        return _unescape(rest[:close], digest_len) if escaped else rest[:close], m[1], reversed_format
    m = _DIGEST_AND_BLANK.match(line, i)
    if not m or len(m[1]) != digest_len or not _HEX.fullmatch(m[1]) or m.end() == len(line):
        raise ValueError(_form(digest_len))
    name = line[m.end():]
    if len(name) == 1 or name[0] not in " *":  # `<hash> <file>`: BSD's reversed format
        if reversed_format is False:
            raise ValueError(_form(digest_len, "a '<hash> <file>' line, with one space, among '<hash>  <file>' lines"))
        reversed_format = True
    elif reversed_format:  # sha256sum -c would read ' <file>' here: say so rather than guess
        raise ValueError(_form(digest_len, "a '<hash>  <file>' line among '<hash> <file>' lines, with one space"))
    else:
        reversed_format, name = False, name[1:]
    return _unescape(name, digest_len) if escaped else name, m[1], reversed_format


def _form(digest_len: int, why: str = "") -> str:
    return (f"not a '<hash>  <file>' or '{_TAGS[digest_len]} (<file>) = <hash>' line of {digest_len}-digit hashes"
            + (f" ({why})" if why else ""))


def _unescape(name: str, digest_len: int) -> str:
    """A name escaped as coreutils escapes it; anything else after a backslash is refused, as there."""
    parts = re.split(r"(\\.?)", name)
    if any(p.startswith("\\") and p not in _UNESCAPES for p in parts[1::2]):
        raise ValueError(_form(digest_len, "a backslash that is not \\\\, \\n or \\r in an escaped name"))
    return "".join(_UNESCAPES.get(p, p) if i % 2 else p for i, p in enumerate(parts))


def normal_name(name: str) -> str:
    """`name` without its `.` components and doubled slashes, which name the same file (`./a.tgz`
    is `a.tgz`); a last component, `..` and a trailing slash are kept (the file they name depends on
    the folders)."""
    if "./" not in name and "//" not in name:  # (no '.' or empty component but the last: most names)
        return name
    parts = name.split("/")
    kept = [p for p in parts[:-1] if p not in ("", ".")] + parts[-1:]
    return ("/" if name.startswith("/") else "") + "/".join(kept) if kept != [""] else name


def read_sums(path: Path, digest_len: int, only: str | Callable[[str], bool] | None = None) -> dict[str, str]:
    """{file name: lowercase hex digest} of a coreutils sums file (`sums_lines`); an empty dict when
    there is none. Anything else than a regular UTF-8 text file of such lines, or two lines for one
    file that disagree (a lying line must not hide behind a true one), is a DataError naming it
    (the build's and verify's one-line errors). `only`: the one name wanted, or a test of the names
    wanted (verify: an archive, a folder's shards): every line is read and checked, only their
    lines are kept (a sums file of 256 MiB held 1.6 GB as a dict); a ValueError of the test is a
    DataError too."""
    try:
        text = read_bytes(path, MAX_TEXT_FILE, "a sums file").decode("utf-8")
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a UTF-8 text file (byte {exc.start}); move the file away or fix it") from None
    except OSError as exc:
        raise cannot(path, "read", exc) from None
    out: dict[str, str] = {}
    try:
        for lineno, name, digest in sums_lines(text, digest_len):
            if only is not None and not (name == only if isinstance(only, str) else only(name)):
                continue
            if out.setdefault(name, digest) != digest:
                first = next(n for n, other, _ in sums_lines(text, digest_len) if other == name)
                shown = repr(name) if len(name) <= 200 else f"{name[:200]!r}... ({len(name):,} characters)"
                raise DataError(f"{path} lines {first} and {lineno}: two different hashes for {shown}; "
                                "move the file away or fix it")
    except ValueError as exc:
        raise DataError(f"{path} {exc}; move the file away or fix it") from None
    return out


def _write_sums(path: Path, entries: dict[str, str]) -> None:
    if not entries:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return
    atomic_write(path, "".join(sums_line(h, name) for name, h in sorted(entries.items())).encode())


def update_sums(out_dir: Path, drop=lambda name: False, add: dict[str, tuple[str, str]] | None = None) -> None:
    """In SHA256SUMS and MD5SUMS: remove the lines whose name `drop` accepts, then set the lines of
    `add` ({name: (sha256, md5)}), keeping every other line."""
    add = add or {}
    for i, (sums_name, digest_len) in enumerate(SUM_FILES.items()):
        path = out_dir / sums_name
        entries = read_sums(path, digest_len)
        kept = {n: h for n, h in entries.items() if not drop(n)}
        kept.update({n: digests[i] for n, digests in add.items()})
        if kept != entries:
            _write_sums(path, kept)


