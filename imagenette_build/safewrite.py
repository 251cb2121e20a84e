"""Files beside the archives: SHA256SUMS and MD5SUMS (coreutils format, merged, never clobbered)
and the JSON build report. Every file is written to a temporary name and renamed into place.

Temporary names are `.<name>.partial-<host>-<pid>` (`partial_path`, also used for the archives):
a run removes those its host's dead processes left behind (`remove_stale_partials`), and never
touches those of a live process or of another machine writing to a shared folder."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from . import procs
from .errors import DataError, why
from .readfile import kind_of, read_bytes

_PARTIAL_RE = re.compile(r"^\..+\.partial-(?P<host>.+)-(?P<pid>[0-9]+)$")


def partial_path(path: Path) -> Path:
    """The temporary name `path` is written under before it is renamed into place."""
    return path.with_name(f".{path.name}.partial-{procs.tag()}")


def final_path(path: Path) -> Path:
    """`path` with each temporary `partial_path` name in it, the file's or a folder's above it (a
    document in a sharded output's temporary folder), given its final name, for messages."""
    return Path(*(p[1:p.rindex(".partial-")] if _PARTIAL_RE.match(p) else p for p in path.parts))


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


def remove_any(path: Path) -> None:
    """Remove whatever is at the temporary name `path`: a folder with what it holds, anything else
    (a symlink too) as itself, never what a symlink points to."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def new_dir(path: Path) -> None:
    """Make the folder `path` afresh, as `create_new` makes a file: whatever was at that name goes."""
    remove_any(path)
    os.mkdir(path)


def final_name_problem(path: Path, folder: bool) -> str | None:
    """Why the build may not put a file (or, `folder`, a folder) at the final name `path`; None when
    nothing is there or what the build puts there is (a regular file; a folder, not a symlink to
    one). Anything else the build did not make: it neither writes through it nor replaces it."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"{path}: cannot look at it: {why(exc)}"
    if stat.S_ISLNK(mode):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        what = f"is a symbolic link to {target!r}" + ("" if os.path.exists(path) else " (which does not exist)")
    elif stat.S_ISDIR(mode):
        what = None if folder else "is a folder"
    elif stat.S_ISREG(mode):
        what = None if not folder else "is a file"
    else:
        what = f"is {kind_of(mode)}"
    if what is None:
        return None
    return (f"{path}: {what}, where the build puts {'a folder' if folder else 'a file'}; move it away, "
            "or build into another --out")


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
    the caller to remove with `remove_any`; None when nothing was there. The one way a finished
    file or folder takes its final name (`extract`, the shard folders)."""
    if replace:
        try:
            if _renameat2(new, final, _RENAME_EXCHANGE):
                return new
        except FileNotFoundError:
            pass  # nothing at `final` after all
        else:
            if os.path.lexists(final):  # no exchange here: move the old one aside first, back on failure
                aside = partial_path(final.with_name(final.name + ".old"))
                remove_any(aside)  # (left by a dead process whose pid this one has now)
                os.rename(final, aside)
                try:
                    os.rename(new, final)
                except OSError:
                    os.rename(aside, final)
                    raise
                return aside
    if not _renameat2(new, final, _RENAME_NOREPLACE):
        if os.path.lexists(final):
            raise FileExistsError(errno.EEXIST, "already exists", str(final))
        os.rename(new, final)
    return None


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


class SidecarFile:
    """A text file beside an output (its member list, its provenance): written a line at a time
    under a temporary name (never through a symlink planted there), hashed as it is written,
    synced by `close`, renamed in by `commit`."""

    def __init__(self, final_path: Path, tmp_path: Path):
        self.final_path = final_path
        self.tmp_path = tmp_path
        self._file = open(create_new(tmp_path), "w", encoding="utf-8", newline="\n")
        self._digest = hashlib.sha256()
        self._md5 = hashlib.md5()
        self.bytes = 0
        self.sha256 = ""

    def put(self, line: str) -> None:
        self._file.write(line)
        raw = line.encode("utf-8")
        self._digest.update(raw)
        self._md5.update(raw)
        self.bytes += len(raw)

    def close(self) -> tuple[int, str, str]:
        """Finish the file under its temporary name (synced): its (bytes, sha256, md5)."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self.sha256 = self._digest.hexdigest()
        return self.bytes, self.sha256, self._md5.hexdigest()

    def commit(self) -> None:
        os.replace(self.tmp_path, self.final_path)

    def abort(self) -> None:
        """Remove the temporary file; safe at any point (a full disk may refuse the last flush)."""
        try:
            self._file.close()
        except OSError:
            pass
        try:
            os.unlink(self.tmp_path)
        except FileNotFoundError:
            pass
