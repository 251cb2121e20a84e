"""A cache of resized images, so that a rerun after an interruption redoes only what was not done.

Each entry is one resized image (one source, one size), stored under a key that is the sha256 of:
the entry format version, the toolchain that made the bytes (this package's version and the code of
`transform.py`, Pillow flavour and version, libjpeg version, all as seen by the worker that made
it), the recipe, the size, and the sha256 of the source bytes the worker read. A changed source,
recipe or toolchain therefore never finds a stale entry: it finds no entry. Full-size outputs are the
source bytes themselves and are never cached.

Lookups and writes happen in the workers (`transform.process_batch`), so the cache also works when
the workers run on other machines that see the cache folder at the same path.

Layout: `<root>/<k[:2]>/<k>` for key `k`; `<root>/tmp/` holds entries being written. An entry is
`sha256(key + payload) + payload`: a short, damaged or misplaced entry fails that check, is removed
and recomputed. Entries are written to `tmp/<host>-<pid>-<k>` and renamed into place, so a killed
worker never leaves a partial entry under a final name; its temporary file is removed by the next
run on the same host (`remove_stale_temp`). Writes are not fsynced (a lost entry is only recomputed,
and the check above catches one damaged by a power cut): the cost per image stays near a file
create and a rename.

Why one entry per image rather than per batch of images: measured on the 13,394-image list, writing
an entry costs 50-200 us, about 2-5 % of the 2-4 ms a resize costs, and per-image entries survive
anything that shifts batch boundaries (another --batch-size, a source image added or removed, a
different manifest over the same classes, --size 160 then --size 160 --size 320), which per-batch
entries would not. The closing note of issue 7 has the figures.

A failed cache write (disk full, read-only folder) never fails the build: the image is used, the
failure counted and reported once at the end.
"""

from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

FORMAT = "imagenette-build image cache 1"
DEFAULT_DIRNAME = ".imagenette-cache"  # under --out
TAG = "CACHEDIR.TAG"  # https://bford.info/cachedir/: backup tools skip the folder
TAG_TEXT = ("Signature: 8a477f597d28d172789f06886806bc55\n"
            "# This folder is a cache of resized images made by imagenette-build.\n"
            "# Delete it at any time; builds recreate what they need (or use --no-cache).\n")
DIGEST = 32


@lru_cache(maxsize=None)
def fingerprint() -> str:
    """What the bytes of a resized image depend on, besides the source, recipe and size: computed
    in the process that makes them."""
    from . import __version__, transform
    from .toolchain import libjpeg_version, pillow_description

    try:
        code = hashlib.sha256(Path(transform.__file__).read_bytes()).hexdigest()
    except OSError:  # pragma: no cover - installed without sources
        code = "unknown"
    return "\n".join((FORMAT, __version__, code, pillow_description(), libjpeg_version()))


@lru_cache(maxsize=None)
def _host() -> str:
    return "".join(c if c.isalnum() or c in ".-_" else "_" for c in socket.gethostname()) or "host"


@dataclass
class CacheStats:
    """Per size: lookups that found an entry, lookups that did not, and entries written."""

    hits: int = 0
    misses: int = 0
    written: int = 0
    damaged: int = 0  # entries found but failing their check (recomputed)
    write_errors: int = 0
    first_write_error: str | None = None

    def add(self, other: CacheStats) -> None:
        self.hits += other.hits
        self.misses += other.misses
        self.written += other.written
        self.damaged += other.damaged
        self.write_errors += other.write_errors
        self.first_write_error = self.first_write_error or other.first_write_error

    def to_json(self) -> dict:
        return {"hits": self.hits, "misses": self.misses, "written": self.written, "damaged": self.damaged,
                "write_errors": self.write_errors}


@dataclass(frozen=True)
class ImageCache:
    """Plain data (a folder path) sent to the workers with each batch."""

    root: str

    def key(self, source_sha256: bytes, size: int, recipe_json: str) -> str:
        h = hashlib.sha256(fingerprint().encode())
        h.update(f"\0{recipe_json}\0{size}\0".encode())
        h.update(source_sha256)
        return h.hexdigest()

    def _path(self, key: str) -> str:
        return os.path.join(self.root, key[:2], key)

    def get(self, key: str, stats: CacheStats) -> bytes | None:
        path = self._path(key)
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError:  # FileNotFoundError above all; an unreadable entry is a miss too
            stats.misses += 1
            return None
        payload = raw[DIGEST:]
        if len(raw) <= DIGEST or hashlib.sha256(key.encode() + payload).digest() != raw[:DIGEST]:
            stats.misses += 1
            stats.damaged += 1
            try:
                os.unlink(path)
            except OSError:
                pass
            return None
        stats.hits += 1
        return payload

    def put(self, key: str, payload: bytes, stats: CacheStats) -> None:
        tmp = os.path.join(self.root, "tmp", f"{_host()}-{os.getpid()}-{key}")
        final = self._path(key)
        try:
            self._write(tmp, final, key, payload)
        except FileNotFoundError:
            try:  # first entry of its folder (or the cache folder itself is new)
                os.makedirs(os.path.dirname(final), exist_ok=True)
                os.makedirs(os.path.dirname(tmp), exist_ok=True)
                self._write(tmp, final, key, payload)
            except OSError as exc:
                self._failed(tmp, exc, stats)
                return
        except OSError as exc:
            self._failed(tmp, exc, stats)
            return
        stats.written += 1

    @staticmethod
    def _write(tmp: str, final: str, key: str, payload: bytes) -> None:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            data = hashlib.sha256(key.encode() + payload).digest() + payload
            if os.write(fd, data) != len(data):
                raise OSError(f"short write to {tmp}")
        finally:
            os.close(fd)
        os.replace(tmp, final)

    @staticmethod
    def _failed(tmp: str, exc: OSError, stats: CacheStats) -> None:
        stats.write_errors += 1
        if stats.first_write_error is None:
            stats.first_write_error = f"{exc.filename or tmp}: {exc.strerror or exc}"
        try:
            os.unlink(tmp)
        except OSError:
            pass


def open_cache(root: Path) -> ImageCache:
    """The cache at `root`, created (with its CACHEDIR.TAG) when missing; temporary files left by
    dead processes of this host are removed. Raises OSError when the folder cannot be made."""
    (root / "tmp").mkdir(parents=True, exist_ok=True)
    tag = root / TAG
    if not tag.exists():
        tag.write_text(TAG_TEXT)
    remove_stale_temp(root)
    return ImageCache(str(root.absolute()))


def remove_stale_temp(root: Path) -> int:
    """Remove `tmp/<this host>-<pid>-*` files whose process is gone; the number removed. Files of
    live processes and of other hosts (a shared cache) are left alone."""
    removed = 0
    prefix = f"{_host()}-"
    try:
        names = os.listdir(root / "tmp")
    except OSError:
        return 0
    for name in names:
        if not name.startswith(prefix):
            continue
        pid = name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            try:
                os.unlink(root / "tmp" / name)
                removed += 1
            except OSError:
                pass
    return removed


def pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
