"""Files beside the archives: SHA256SUMS and MD5SUMS (coreutils format, merged, never clobbered)
and the JSON build report. Every file is written to a temporary name and renamed into place.

Temporary names are `.<name>.partial-<host>-<pid>` (`partial_path`, also used for the archives):
a run removes those its host's dead processes left behind (`remove_stale_partials`), and never
touches those of a live process or of another machine writing to a shared folder."""

from __future__ import annotations

import json
import os
import re
import socket
from functools import lru_cache
from pathlib import Path

from .errors import DataError
from .readfile import MAX_TEXT_FILE, read_bytes

SUM_FILES = {"SHA256SUMS": 64, "MD5SUMS": 32}
_LINE_RE = re.compile(r"^([0-9a-f]+) [ *](.+)$")
_PARTIAL_RE = re.compile(r"^\..+\.partial-(?P<host>.+)-(?P<pid>[0-9]+)$")


@lru_cache(maxsize=None)
def _host() -> str:
    return "".join(c if c.isalnum() or c in "._" else "_" for c in socket.gethostname()) or "host"


def partial_path(path: Path) -> Path:
    """The temporary name `path` is written under before it is renamed into place."""
    return path.with_name(f".{path.name}.partial-{_host()}-{os.getpid()}")


def final_path(path: Path) -> Path:
    """The final name of a temporary `partial_path` (any other path unchanged), for messages."""
    m = _PARTIAL_RE.match(path.name)
    return path.with_name(path.name[1:path.name.rindex(".partial-")]) if m else path


def remove_stale_partials(folder: Path) -> list[str]:
    """Remove the temporary files of dead processes of this host (a build killed with kill -9, or
    by a power cut); the names removed."""
    from .cache import pid_alive

    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        m = _PARTIAL_RE.match(name)
        if m and m["host"] == _host() and not pid_alive(int(m["pid"])):
            try:
                os.unlink(folder / name)
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


def atomic_write(path: Path, data: bytes) -> None:
    tmp = partial_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def read_sums(path: Path, digest_len: int) -> dict[str, str]:
    """{file name: hex digest} of a coreutils sums file; an empty dict when there is none. Anything
    else than a regular UTF-8 text file of '<hash>  <file>' lines is a DataError naming it (the
    build's and verify's one-line errors)."""
    try:
        text = read_bytes(path, MAX_TEXT_FILE, "a sums file").decode("utf-8")
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a UTF-8 text file (byte {exc.start}); move the file away or fix it") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    out = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        m = _LINE_RE.match(line)
        if not m or len(m.group(1)) != digest_len:
            raise DataError(f"{path} line {lineno}: not a '<hash>  <file>' line; move the file away or fix it")
        out[m.group(2)] = m.group(1)
    return out


def _write_sums(path: Path, entries: dict[str, str]) -> None:
    if not entries:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return
    atomic_write(path, "".join(f"{h}  {name}\n" for name, h in sorted(entries.items())).encode())


def set_sums(out_dir: Path, name: str, digests: dict[str, str | None]) -> None:
    """Set (or, with None, remove) `name`'s line in each sums file, keeping every other line."""
    for sums_name, digest_len in SUM_FILES.items():
        path = out_dir / sums_name
        entries = read_sums(path, digest_len)
        digest = digests[sums_name]
        if digest is None:
            if name not in entries:
                continue
            entries.pop(name)
        else:
            entries[name] = digest
        _write_sums(path, entries)


def write_report(path: Path, report: dict) -> None:
    atomic_write(path, (json.dumps(report, indent=2, sort_keys=False) + "\n").encode())
