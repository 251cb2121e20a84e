"""Files beside the archives: SHA256SUMS and MD5SUMS (coreutils format, merged, never clobbered)
and the JSON build report. Every file is written to a temporary name and renamed into place."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from .errors import DataError

SUM_FILES = {"SHA256SUMS": 64, "MD5SUMS": 32}
_LINE_RE = re.compile(r"^([0-9a-f]+) [ *](.+)$")


def atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
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
    """{file name: hex digest} of a coreutils sums file; an empty dict when there is none."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return {}
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
