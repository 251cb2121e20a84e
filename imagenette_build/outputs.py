"""Files beside the archives: SHA256SUMS and MD5SUMS (coreutils format, merged, never clobbered)
and the JSON build report. Every file is written to a temporary name and renamed into place.

Temporary names are `.<name>.partial-<host>-<pid>` (`partial_path`, also used for the archives):
a run removes those its host's dead processes left behind (`remove_stale_partials`), and never
touches those of a live process or of another machine writing to a shared folder."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import re
import shutil
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from . import procs
from .errors import DataError
from .readfile import MAX_TEXT_FILE, kind_of, read_bytes

SUM_FILES = {"SHA256SUMS": 64, "MD5SUMS": 32}
_LINE_RE = re.compile(r"^([0-9a-f]+) [ *](.+)$")
_PARTIAL_RE = re.compile(r"^\..+\.partial-(?P<host>.+)-(?P<pid>[0-9]+)$")


def partial_path(path: Path) -> Path:
    """The temporary name `path` is written under before it is renamed into place."""
    return path.with_name(f".{path.name}.partial-{procs.tag()}")


def final_path(path: Path) -> Path:
    """The final name of a temporary `partial_path` (any other path unchanged), for messages."""
    m = _PARTIAL_RE.match(path.name)
    return path.with_name(path.name[1:path.name.rindex(".partial-")]) if m else path


def remove_stale_partials(folder: Path, prefix: str = ".") -> list[str]:
    """Remove the temporary files (and the temporary folders of sharded outputs) of dead processes
    of this host (a build killed with kill -9, or by a power cut) whose names start with `prefix`;
    the names removed."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        m = _PARTIAL_RE.match(name) if name.startswith(prefix) else None
        if m and procs.is_stale(m["host"], int(m["pid"])):
            path = folder / name
            try:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
                removed.append(name)
            except OSError:
                pass
    return removed


def sync_dir(folder: Path) -> None:
    """fsync a folder, so renames into it survive a power cut (a no-op where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def create_new(path: str | os.PathLike, mode: int = 0o666) -> int:
    """A descriptor of `path` made afresh for writing: whatever was at that name is removed first,
    and the file is never opened through a symlink. (Temporary names hold the process id, which
    anyone who can write to a shared folder can guess: a symlink planted there would have had a
    build write through it, outside its folder.)"""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)


def atomic_write(path: Path, data: bytes) -> None:
    """Write `path` under its temporary name and rename it into place. An OSError names `path`
    (a failed write or fsync names no file of its own)."""
    tmp = partial_path(path)
    try:
        with open(create_new(tmp), "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
        raise


# ------------------------------------------------------------------ renames that never clobber
_AT_FDCWD = -100
_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2
_renameat2_fn = None


def _renameat2(src: Path, dst: Path, flags: int) -> bool:
    """renameat2(2); False where the C library or the filesystem does not have it (then the caller
    does without the flag)."""
    global _renameat2_fn
    if _renameat2_fn is None:
        fn = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", False)
        if fn:
            fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        _renameat2_fn = fn
    if not _renameat2_fn:
        return False
    if _renameat2_fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(dst))


def put_in_place(new: Path, final: Path, replace: bool) -> Path | None:
    """Rename `new` (a finished file or folder) to `final` in one step. Without `replace`, anything
    at `final`, even what appeared a moment ago, is a FileExistsError (RENAME_NOREPLACE; where the
    filesystem lacks it, a check just before the rename). With `replace`, what was at `final` is
    exchanged with `new` (RENAME_EXCHANGE: `final` is never absent) and its new path returned, for
    the caller to remove with `remove_replaced`; None when nothing was there."""
    if replace:
        try:
            if _renameat2(new, final, _RENAME_EXCHANGE):
                return new
        except FileNotFoundError:
            pass  # nothing at `final` after all
        else:
            if os.path.lexists(final):  # no exchange here: move the old one aside first
                aside = partial_path(final.with_name(final.name + ".old"))
                os.rename(final, aside)
                os.rename(new, final)
                return aside
    if not _renameat2(new, final, _RENAME_NOREPLACE):
        if os.path.lexists(final):
            raise FileExistsError(errno.EEXIST, "already exists", str(final))
        os.rename(new, final)
    return None


def remove_replaced(path: Path) -> None:
    """Remove what `put_in_place` moved out of the way: a folder with what it holds, a file or a
    link itself (never what a link points to)."""
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass


# --------------------------------------------------------------------- files a user names
def write_user_file(path: Path, data: bytes, replace: bool = True) -> None:
    """Write a file the user named (`preview -o`, `new-manifest --out`). Nothing there, or a regular
    file: written under a temporary name beside it and renamed into place (`replace=False`: an
    existing file is a FileExistsError). A symbolic link is followed to the file it names. A
    character device or a named pipe is written into, as `cp` and `sort -o` do (a pipe only when a
    reader has it open: this never waits). A folder, a block device, a socket or a link to nothing
    is refused. Errors are OSErrors naming `path`."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise OSError(errno.ENOENT, "a symbolic link to a missing file", str(path)) from None
        st = None
    if st is None or stat.S_ISREG(st.st_mode):
        if st is not None and not replace:
            raise FileExistsError(errno.EEXIST, "already exists", str(path))
        atomic_write(Path(os.path.realpath(path)) if st is not None else path, data)
        return
    if not (stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
        what = kind_of(st.st_mode)
        raise OSError(errno.EINVAL, f"{what}, not a file{': never written over' if what != 'a folder' else ''}",
                      str(path))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise OSError(exc.errno, "a named pipe that no process is reading", str(path)) from None
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    finally:
        os.close(fd)


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


def read_sums(path: Path, digest_len: int, only: str | None = None) -> dict[str, str]:
    """{file name: lowercase hex digest} of a coreutils sums file (`sums_lines`); an empty dict when
    there is none. Anything else than a regular UTF-8 text file of such lines, or two lines for one
    file that disagree (a lying line must not hide behind a true one), is a DataError naming it
    (the build's and verify's one-line errors). `only`: the one name wanted (verify): every line is
    read and checked, only its lines are kept (a sums file of 256 MiB held 1.6 GB as a dict)."""
    try:
        text = read_bytes(path, MAX_TEXT_FILE, "a sums file").decode("utf-8")
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a UTF-8 text file (byte {exc.start}); move the file away or fix it") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    out: dict[str, str] = {}
    try:
        for lineno, name, digest in sums_lines(text, digest_len):
            if only is not None and name != only:
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


def write_report(path: Path, report: dict) -> None:
    atomic_write(path, (json.dumps(report, indent=2, sort_keys=False) + "\n").encode())


# ---------------------------------------------------------------------------------------- locks
# The output folder is shared by every build writing to it. Two locks, both flock(2) (released by
# the kernel when a process dies, kill -9 included), on hidden files that their holder removes:
# - `.<archive>.lock`, held by the build writing that archive from start to end: a second build of
#   the same archive is refused at once, naming the first (two writers of one final name would leave
#   the sums line of one beside the bytes of the other);
# - `.imagenette-build.lock`, held around each build's commit (sums read-modify-write, report,
#   rename): builds of different archives wait there for each other, so none loses another's line.
FOLDER_LOCK = ".imagenette-build.lock"


def _take_lock(path: Path, wait: bool) -> int | None:
    """A descriptor holding an exclusive flock on `path` (created if needed), or None when another
    process holds it and `wait` is False."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        # Its holder removes the file before letting go: the lock counts only on the file still there.
        try:
            if os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _drop_lock(path: Path, fd: int) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
    os.close(fd)


@contextmanager
def folder_lock(out: Path) -> Iterator[None]:
    """Held around a commit: waits for another build's commit in the same folder to end."""
    path = out / FOLDER_LOCK
    fd = _take_lock(path, wait=True)
    try:
        yield
    finally:
        _drop_lock(path, fd)


class ArchiveLocks:
    """The locks of the archives one build writes; `release` lets them go."""

    def __init__(self, archives: Iterable[Path], busy: str = "another build is writing it",
                 advice: str = "wait for it to end, or build into another --out"):
        self.held: list[tuple[Path, int]] = []
        try:
            for archive in archives:
                path = archive.with_name(f".{archive.name}.lock")
                try:
                    fd = _take_lock(path, wait=False)
                except OSError as exc:  # (a folder that cannot be written: named by the archive)
                    raise OSError(exc.errno, exc.strerror or str(exc), str(archive)) from None
                if fd is None:
                    raise DataError(f"{archive}: {busy} ({_holder(path)}); {advice}")
                os.ftruncate(fd, 0)
                os.write(fd, f"{procs.host()} {os.getpid()}\n".encode())
                self.held.append((path, fd))
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        while self.held:
            _drop_lock(*self.held.pop())


def _holder(lock: Path) -> str:
    try:
        host, pid = read_bytes(lock, 1024, "a lock file").decode("ascii").split()
    except (OSError, UnicodeDecodeError, ValueError):
        return "a process that has just started"
    return f"process {pid}" + ("" if host == procs.host() else f" on {host}")
