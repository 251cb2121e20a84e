"""Names from outside become paths here, and only here: an archive member's name, the stem of an
archive's file name. `extract`, verify's structure level and preview read names through
`member_parts`; `extract` writes through `SafeTree`; every other file a user names is written by
`safewrite.write_user_file`.

A dataset archive has no reason for a name out of normal form, so such a name is refused, not
repaired: an empty name, an empty part (a doubled `/`), a `.` or `..` part, a leading `/`, a
backslash (a separator on Windows), a Windows drive, a NUL or other control character, bytes that
are not UTF-8, a part that Unicode normalisation (NFKC, as some filesystems and tools apply it)
turns into `.`, `..` or a separator, or a part longer than a file name may be (255 bytes). One
leading `./`, as `tar -C dir .` writes, is normal form. This is stricter than the standard library's
`tarfile.data_filter` (PEP 706), which strips a leading `/` instead of refusing it; `extract` also
applies `data_filter` where the Python has it (3.12+, and the security releases of 3.8-3.11).

`SafeTree` writes below one folder through directory descriptors: each directory is opened with
O_NOFOLLOW relative to its parent's descriptor and each file created there with O_EXCL | O_NOFOLLOW,
so no symlink, rename or `..` met on the way can lead a write outside the root, whatever happens
in the tree meanwhile.
"""

from __future__ import annotations

import errno
import os
import re
import unicodedata
from pathlib import Path

NAME_MAX = 255  # bytes in one file name (Linux, macOS and Windows filesystems alike)
_DRIVE_RE = re.compile(r"^[A-Za-z]:")


class UnsafeName(ValueError):
    """A name that cannot become a path below a folder; the message says why."""


def _part_problem(part: str) -> str | None:
    if part == "":
        return "an empty part (a doubled '/')"
    if part in (".", ".."):
        return f"a {part!r} part"
    if len(part.encode("utf-8", "surrogatepass")) > NAME_MAX:
        return f"a part longer than {NAME_MAX} bytes"
    folded = unicodedata.normalize("NFKC", part)
    if folded in (".", "..") or "/" in folded or "\\" in folded:
        return f"a part that reads as {folded!r} once Unicode is normalised"
    return None


def _name_problem(name: str) -> str | None:
    """What is wrong with `name` as a whole, before it is split."""
    if not name:
        return "an empty name"
    if "\0" in name:
        return "a NUL character"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "a control character"
    if any(0xD800 <= ord(c) <= 0xDFFF for c in name):  # tarfile keeps a byte that is not UTF-8 as one
        return "bytes that are not UTF-8"
    if "\\" in name:
        return "a backslash (a path separator on Windows)"
    if name.startswith("/"):
        return "an absolute path"
    if _DRIVE_RE.match(name):
        return "a Windows drive"
    return None


def member_parts(name: str, is_dir: bool = False) -> tuple[str, ...]:
    """The parts of an archive member's name in normal form (`()` for the archive's root, `./`),
    or UnsafeName saying why not. A directory's name may end with one `/`."""
    problem = _name_problem(name)
    if problem is None:
        rest = name[2:] if name.startswith("./") else name
        if is_dir and rest.endswith("/"):
            rest = rest[:-1]
        if rest in ("", "."):
            if is_dir:
                return ()
            raise UnsafeName("a file named like the archive's root folder")
        parts = tuple(rest.split("/"))
        problem = next((p for p in map(_part_problem, parts) if p), None)
        if problem is None:
            return parts
    raise UnsafeName(problem)


def ordinary_name(name: str) -> str:
    """`name` if it is one ordinary file name (no separator, not `.` or `..`, not hidden, nothing
    `member_parts` refuses), else UnsafeName saying why."""
    problem = _name_problem(name) or ("a '/'" if "/" in name else None) or _part_problem(name)
    if problem is None and name.startswith("."):
        problem = "a leading '.' (a hidden name, like the tool's temporary ones)"
    if problem:
        raise UnsafeName(problem)
    return name


def below(parts: tuple[str, ...], top: str) -> tuple[str, ...] | None:
    """The parts below the top folder `top` (`()` for the folder itself); None when not below it."""
    return parts[1:] if parts[:1] == (top,) else None


def printable(text: str) -> str:
    r"""`text` safe for a terminal and a line-based log: a backslash and every character that is not
    printable (CR, LF, ESC and the other control characters, format characters, line separators)
    as a Python-style escape (\\, \x1b, \u2028), a byte that was not UTF-8 (tarfile keeps it as
    a surrogate) as \xNN. A member name cannot forge a report line or move the cursor."""
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(c if c.isprintable() and c != "\\" else _escaped(c) for c in text)


def _escaped(c: str) -> str:
    n = ord(c)
    if c == "\\":
        return "\\\\"
    if 0xDC80 <= n <= 0xDCFF:  # surrogateescape's stand-in for the byte n - 0xDC00
        n -= 0xDC00
    return f"\\x{n:02x}" if n <= 0xFF else f"\\u{n:04x}" if n <= 0xFFFF else f"\\U{n:08x}"



class SafeTree:
    """Makes folders and files below `root` (which must be a real folder, not a symlink) by their
    parts from `member_parts`. A name met twice, or a file where a folder goes, raises
    FileExistsError / NotADirectoryError naming the member's parts: the caller blames the archive."""

    _FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

    def __init__(self, root: Path):
        self.root = root
        self._root_fd = os.open(root, self._FLAGS)
        # The descriptors of the folders of the last path written: members come folder by folder,
        # so one chain is enough, and it never holds more descriptors than the path has parts.
        self._chain: list[tuple[str, int]] = []

    def close(self) -> None:
        self._cut(0)
        os.close(self._root_fd)

    def __enter__(self) -> SafeTree:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _cut(self, keep: int) -> None:
        while len(self._chain) > keep:
            os.close(self._chain.pop()[1])

    def _folder(self, parts: tuple[str, ...]) -> int:
        """The descriptor of the folder `parts`, made (mode 0o777 less the umask) where missing."""
        keep = 0
        while keep < min(len(parts), len(self._chain)) and self._chain[keep][0] == parts[keep]:
            keep += 1
        self._cut(keep)
        fd = self._chain[-1][1] if self._chain else self._root_fd
        for part in parts[keep:]:
            try:
                os.mkdir(part, 0o777, dir_fd=fd)
            except FileExistsError:
                pass
            try:
                fd = os.open(part, self._FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ENOTDIR, errno.ELOOP):  # a file (or link) where a folder goes
                    raise NotADirectoryError(errno.ENOTDIR, "a file of that name is already there",
                                             "/".join(parts)) from None
                raise
            self._chain.append((part, fd))
        return fd

    def make_dir(self, parts: tuple[str, ...], mtime: int | None = None) -> None:
        fd = self._folder(parts)
        if mtime is not None:
            os.utime(fd, (mtime, mtime))

    def set_dir_time(self, parts: tuple[str, ...], mtime: int) -> None:
        """A folder's modification time, set after its files are written (as tar does)."""
        os.utime(self._folder(parts), (mtime, mtime))

    def write_file(self, parts: tuple[str, ...], data: bytes, mode: int, mtime: int) -> None:
        """A new file `parts` (never one already there, never through a link) with `data`."""
        if not parts:
            raise IsADirectoryError(errno.EISDIR, "the root is a folder", "")
        parent = self._folder(parts[:-1])
        name = parts[-1]
        try:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode,
                         dir_fd=parent)
        except FileExistsError:
            raise FileExistsError(errno.EEXIST, "a member of that name was written earlier",
                                  "/".join(parts)) from None
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.utime(fd, (mtime, mtime))
        finally:
            os.close(fd)
