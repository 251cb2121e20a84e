"""A cache of resized images, so that a rerun after an interruption redoes only what was not finished.

Each entry is one resized image (one source, one size) under a key that names everything its bytes
depend on (the toolchain's fingerprint, the recipe, the size, the identity of the source file
read), so a changed source, recipe or toolchain finds no entry, never a stale one. The entries a
task made are written together as one *pack* file; lookups and writes happen in the workers. The
file format, the key and the rules for damaged, stale and shared caches: docs/cache-format.md.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import shutil
import struct
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from . import procs
from .safewrite import create_new, partial_path, remove_any
from .readfile import open_regular
from .errors import why

FORMAT = "imagenette-build image cache 4"  # 4: an entry holds the pHash (duplicates.py), then the JPEG
DEFAULT_DIRNAME = ".imagenette-cache"  # under --out
TAG = "CACHEDIR.TAG"  # https://bford.info/cachedir/: backup tools skip the folder
TAG_TEXT = ("Signature: 8a477f597d28d172789f06886806bc55\n"
            "# This folder is a cache of resized images made by imagenette-build.\n"
            "# Delete it at any time; builds recreate what they need (or use --no-cache).\n")
PACKS = "packs"
LOCK = "in-use.lock"
MAGIC = b"imagenette-build cache pack 1\n"
_COUNT = struct.Struct("<I")
_SLOT = struct.Struct("<32sQI")  # one index entry: key, record offset, payload length
# The same index entry as numpy reads it: the key's first 8 bytes as an integer, the rest unused.
_SLOT_DTYPE = np.dtype([("k0", "<u8"), ("k1", "V24"), ("offset", "<u8"), ("length", "<u4")])
assert _SLOT_DTYPE.itemsize == _SLOT.size
RECORD_HEAD = 64  # key + check
INDEX_READ = 1 << 13  # the first read of a pack: its whole index for up to 185 entries (3 sizes x 61 images)


@dataclass
class CacheStats:
    """Per size: lookups that found an entry, lookups that did not, and entries written."""

    hits: int = 0
    misses: int = 0
    written: int = 0
    damaged: int = 0  # entries found but failing their check (made again)
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
    """Plain data sent to the workers with each batch: the folder, and a token that changes when the
    workers must read the packs' index again (each build, each pass of a build)."""

    root: str
    fingerprint: str  # what the bytes depend on besides source, recipe and size (toolchain.fingerprint)
    generation: str = ""

    def renewed(self) -> ImageCache:
        """The same cache, for a new pass: workers will see the packs written since."""
        return replace(self, generation=os.urandom(8).hex())

    def key(self, source_identity: bytes, size: int, recipe_json: str) -> bytes:
        h = hashlib.sha256(f"{FORMAT}\n{self.fingerprint}".encode())
        h.update(f"\0{recipe_json}\0{size}\0".encode())
        h.update(source_identity)
        return h.digest()

    def get(self, key: bytes, stats: CacheStats) -> bytes | None:
        """The entry's bytes, or None: a miss. A fault of the cache itself (an index entry pointing
        past its pack, a bit flipped in an offset, anything raised while looking) counts as a
        damaged entry and the image is made again: the caller must never take it for a fault of
        the source image, which it would report as unreadable (or, with --skip-broken, leave out)."""
        damaged = False
        try:
            places = _index(self).find(key)
        except Exception:  # noqa: BLE001 - any failure here is the cache's, never the source's
            places, damaged = [], True
        for path, offset, length in places:
            try:
                raw = _read_record(path, offset, length)
            except FileNotFoundError:  # the pack was removed meanwhile: a miss
                continue
            except Exception:  # noqa: BLE001 - as above: a damaged entry
                damaged = True
                continue
            payload = raw[RECORD_HEAD:]
            if len(payload) != length or hashlib.sha256(raw[:32] + payload).digest() != raw[32:64]:
                damaged = True  # cut short, or a bit changed in it
            elif raw[:32] == key:
                stats.hits += 1
                return payload
            elif raw[:8] != key[:8]:  # a sound record, but not the one the index said
                damaged = True
            # else: another key with the same first 8 bytes (the index keeps only those)
        stats.misses += 1
        stats.damaged += damaged
        return None

    def pending(self) -> PendingPack:
        """Where a task puts the images it made; `PendingPack.write` stores them as one pack."""
        return PendingPack(self.root)


def _read_record(path: str, offset: int, length: int) -> bytes:
    """The record at `offset` of a pack, or b"" when the index points past the pack's end (a
    damaged index: the record's check then fails)."""
    fd = open_regular(path)
    try:
        if offset + RECORD_HEAD + length > os.fstat(fd).st_size:
            return b""
        return os.pread(fd, RECORD_HEAD + length, offset)
    finally:
        os.close(fd)


class PendingPack:
    def __init__(self, root: str):
        self.root = root
        self.entries: list[tuple[bytes, bytes, CacheStats]] = []

    def put(self, key: bytes, payload: bytes, stats: CacheStats) -> None:
        self.entries.append((key, payload, stats))

    def write(self) -> None:
        """Write the entries put so far as one pack (nothing when there are none). A failure is
        counted in each entry's stats, never raised."""
        if not self.entries:
            return
        data = pack_bytes([(key, payload) for key, payload, _ in self.entries])
        name = hashlib.sha256(data).hexdigest()[:32] + ".pack"
        # (the thread too: two threads of one process may make the same pack at once)
        tmp = os.path.join(self.root, "tmp", f"{procs.tag()}-{threading.get_ident()}-{name}")
        try:
            fd = create_new(tmp, 0o644)
            try:
                if os.write(fd, data) != len(data):
                    raise OSError(f"short write to {tmp}")
            finally:
                os.close(fd)
            os.replace(tmp, os.path.join(self.root, PACKS, name))
        except OSError as exc:
            for _, _, stats in self.entries:
                stats.write_errors += 1
                if stats.first_write_error is None:
                    stats.first_write_error = f"{exc.filename or tmp}: {why(exc)}"
            try:
                os.unlink(tmp)
            except OSError:
                pass
        else:
            for _, _, stats in self.entries:
                stats.written += 1
        self.entries = []


def pack_bytes(entries: list[tuple[bytes, bytes]]) -> bytes:
    """One pack holding `entries` ((key, payload) pairs), in the format of the module docstring."""
    offset = len(MAGIC) + _COUNT.size + _SLOT.size * len(entries)
    slots, records = [], []
    for key, payload in entries:
        slots.append(_SLOT.pack(key, offset, len(payload)))
        records.append(key + hashlib.sha256(key + payload).digest() + payload)
        offset += RECORD_HEAD + len(payload)
    return b"".join([MAGIC, _COUNT.pack(len(entries)), *slots, *records])


def read_pack_index(path: str) -> np.ndarray | None:
    """The index entries of one pack (`_SLOT_DTYPE`), or None when it is not a readable pack."""
    try:
        with open(open_regular(path), "rb") as f:  # (a FIFO among the packs would block a plain open)
            head = f.read(INDEX_READ)
            start = len(MAGIC) + _COUNT.size
            if len(head) < start or not head.startswith(MAGIC):
                return None
            (n,) = _COUNT.unpack_from(head, len(MAGIC))
            need = start + n * _SLOT.size
            if need > len(head):
                if need > os.fstat(f.fileno()).st_size:
                    return None
                head += f.read(need - len(head))
    except OSError:
        return None
    return np.frombuffer(head, _SLOT_DTYPE, n, start)


class _Index:
    """Every entry of every pack in a cache folder, as read at one moment: sorted by the keys'
    first 8 bytes, 24 bytes an entry."""

    def __init__(self, ident: tuple[str, str], root: str):
        self.ident = ident
        self.paths: list[str] = []
        k0s, offsets, lengths, packs = [], [], [], []
        folder = os.path.join(root, PACKS)
        try:
            names = sorted(n for n in os.listdir(folder) if n.endswith(".pack"))
        except OSError:
            names = []
        for name in names:
            path = os.path.join(folder, name)
            slots = read_pack_index(path)
            if slots is None:  # nothing in it can be found: removed if it is a damaged pack, not another's file
                try:
                    with open(open_regular(path), "rb") as f:
                        if MAGIC.startswith(f.read(len(MAGIC))):  # (or empty: packs are not synced)
                            os.unlink(path)
                except OSError:
                    pass
                continue
            k0s.append(slots["k0"].copy())  # (copies: the 44-byte slots are not kept)
            offsets.append(slots["offset"].copy())
            lengths.append(slots["length"].copy())
            packs.append(np.full(len(slots), len(self.paths), np.uint32))
            self.paths.append(path)
        k0 = np.concatenate(k0s) if k0s else np.empty(0, np.uint64)
        order = np.argsort(k0, kind="stable")
        self.k0 = k0[order]
        del k0
        self.offset = np.concatenate(offsets)[order] if offsets else np.empty(0, np.uint64)
        self.length = np.concatenate(lengths)[order] if lengths else np.empty(0, np.uint32)
        self.pack = np.concatenate(packs)[order] if packs else np.empty(0, np.uint32)

    def find(self, key: bytes) -> list[tuple[str, int, int]]:
        """(pack path, record offset, payload length) of each entry whose key starts like `key`."""
        k0 = np.frombuffer(key, "<u8", 1)[0]
        lo = int(np.searchsorted(self.k0, k0, "left"))
        hi = int(np.searchsorted(self.k0, k0, "right"))
        return [(self.paths[self.pack[i]], int(self.offset[i]), int(self.length[i])) for i in range(lo, hi)]

    def __len__(self) -> int:
        return len(self.k0)


_index_lock = threading.Lock()
_current: _Index | None = None  # one per process: the latest generation asked for


def _index(cache: ImageCache) -> _Index:
    global _current
    with _index_lock:
        if _current is None or _current.ident != (cache.root, cache.generation):
            _current = None  # let the old one go before the new one is read
            _current = _Index((cache.root, cache.generation), cache.root)
        return _current


def count_entries(root: Path) -> int:
    """How many entries the cache at `root` holds (damaged records included)."""
    return len(_Index((str(root), "count"), str(root)))


def open_cache(root: Path, fingerprint: dict[str, str], own: bool = False) -> CacheUse:
    """The cache at `root` for images made by the toolchain `fingerprint`, created (with its
    CACHEDIR.TAG) when missing, and held (`CacheUse`) until the build is done with it; temporary
    files left by dead processes of this host are removed. `own`: the default folder, which a build
    removes when it is done: it must be a folder, not a symlink to one elsewhere. Raises OSError
    when the folder cannot be made or used."""
    if own and os.path.islink(root):
        raise OSError(errno.ENOTDIR, "is a symbolic link (the default cache is a folder of its own; --cache DIR "
                      "puts it elsewhere)", str(root))
    while True:
        root.mkdir(parents=True, exist_ok=True)
        lock = root / LOCK
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        except FileNotFoundError:  # the folder went meanwhile (a build done with it): make it again
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)  # (waits while a build removes the folder)
            # The lock counts only on the file still there: a build that removed the folder held this
            # one's lock file, now gone; then the folder is made again.
            st = os.stat(lock, follow_symlinks=False)
            if (st.st_dev, st.st_ino) == (os.fstat(fd).st_dev, os.fstat(fd).st_ino):
                break
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    try:
        (root / "tmp").mkdir(exist_ok=True)
        try:
            (root / PACKS).mkdir(exist_ok=True)
        except OSError:  # (a file there): every write fails, is counted and reported; the build goes on
            pass
        try:  # never through a symlink planted there
            with open(os.open(root / TAG, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                              0o644), "w") as f:
                f.write(TAG_TEXT)
        except FileExistsError:
            pass
        remove_stale_temp(root)
    except BaseException:
        os.close(fd)
        raise
    text = "\n".join(f"{k}={v}" for k, v in sorted(fingerprint.items()))
    return CacheUse(ImageCache(str(root.absolute()), text).renewed(), root, fd)


class CacheUse:
    """A build's use of a cache folder (`open_cache`): the cache, and a shared flock on its lock file
    held until `release` or `remove`, so that no other build removes the folder meanwhile."""

    def __init__(self, cache: ImageCache, root: Path, fd: int):
        self.cache, self.root, self._fd = cache, root, fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def remove(self) -> tuple[int | None, str]:
        """Remove the folder and let it go: (bytes removed, ""), or (None, why it is left): another
        build uses it, or it holds a file the cache did not make. The folder is first renamed
        away, so a build that opens the cache meanwhile makes a new one."""
        try:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return None, "another build is using it"
            aside = partial_path(self.root)  # (removed by a later build in that folder if this one dies)
            try:
                foreign = sorted(set(os.listdir(self.root)) - {TAG, PACKS, "tmp", LOCK})
                if foreign:
                    return None, f"it holds {foreign[0]!r}, which the cache did not make"
                remove_any(aside)
                os.replace(self.root, aside)
            except OSError as exc:
                return None, f"cannot remove it: {why(exc)}"
            size = sum(os.lstat(os.path.join(d, f)).st_size for d, _, files in os.walk(aside) for f in files)
            shutil.rmtree(aside, ignore_errors=True)
            return size, ""
        finally:
            self.release()


def remove_stale_temp(root: Path) -> int:
    """Remove `tmp/<this host>-<pid>-*` files whose process is gone; the number removed. Files of
    live processes and of other hosts (a shared cache) are left alone."""
    removed = 0
    prefix = f"{procs.host()}-"
    try:
        names = os.listdir(root / "tmp")
    except OSError:
        return 0
    for name in names:
        if not name.startswith(prefix):
            continue
        pid = name[len(prefix):].split("-", 1)[0]
        if pid.isascii() and pid.isdigit() and len(pid) < 10 and procs.is_stale(procs.host(), int(pid)):
            try:
                os.unlink(root / "tmp" / name)
                removed += 1
            except OSError:
                pass
    return removed

