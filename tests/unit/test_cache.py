"""The cache of resized images (cache.py), by itself: entries found by their own full key, a key
that covers everything the bytes depend on, packs whose index is longer than a first read, two
threads writing the same pack, and a folder removed only when no build uses it."""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import os
import threading
import time

import pytest

from imagenette_build import cache as cache_mod
from imagenette_build.cache import ImageCache
from imagenette_build.toolchain import fingerprint


def _packs(root):
    return sorted((root / cache_mod.PACKS).iterdir())


def test_entries_are_found_by_their_own_key(tmp_path):
    """The index keeps only each key's first 8 bytes: entries that share them are still told apart,
    and a key that is not there is a miss, not damage. Packs written after a worker read the index
    are seen once the cache is renewed (the next pass or build)."""
    cache = cache_mod.open_cache(tmp_path / "c", fingerprint()).cache
    a, b, c = (b"same8by" + bytes([i]) * 25 for i in (1, 2, 3))
    pending = cache.pending()
    stats = cache_mod.CacheStats()
    pending.put(a, b"image a", stats)
    pending.put(b, b"image b", stats)
    pending.write()
    assert stats.written == 2 and len(_packs(tmp_path / "c")) == 1
    assert (cache.get(b, stats), cache.get(a, stats), cache.get(c, stats)) == (b"image b", b"image a", None)
    assert (stats.hits, stats.misses, stats.damaged) == (2, 1, 0)
    later = cache.pending()
    later.put(c, b"image c", stats)
    later.write()
    assert cache.get(c, stats) is None  # this generation's index was read before
    junk = tmp_path / "c" / cache_mod.PACKS / "junk.pack"
    junk.write_bytes(cache_mod.MAGIC + b"\xff\xff\xff\x00 not an index")
    assert cache.renewed().get(c, stats) == b"image c"
    assert not junk.exists()  # a pack whose index cannot be read is removed
    assert cache_mod.count_entries(tmp_path / "c") == 3


def test_a_file_among_the_packs_that_is_not_a_pack_is_ignored_never_removed(tmp_path):
    """--cache DIR may name a folder of the user's, with a packs/ of its own: a file there whose
    index could not be read was removed, whatever it was. Only a damaged or empty pack is now."""
    cache = cache_mod.open_cache(tmp_path / "c", fingerprint()).cache
    theirs = tmp_path / "c" / cache_mod.PACKS / "game.pack"
    theirs.write_bytes(b"PK\x03\x04 someone's data")
    cut = tmp_path / "c" / cache_mod.PACKS / "cut.pack"
    cut.write_bytes(cache_mod.MAGIC[:5])
    empty = tmp_path / "c" / cache_mod.PACKS / "empty.pack"
    empty.write_bytes(b"")
    assert cache.renewed().get(b"k" * 32, cache_mod.CacheStats()) is None
    assert theirs.read_bytes() == b"PK\x03\x04 someone's data" and not cut.exists() and not empty.exists()


def test_key_covers_source_size_recipe_and_toolchain(monkeypatch):
    c = ImageCache("/nowhere", "\n".join(f"{k}={v}" for k, v in sorted(fingerprint().items())))
    base = c.key(b"\x01" * 32, 160, '{"quality": 75}')
    assert base != c.key(b"\x02" * 32, 160, '{"quality": 75}')
    assert base != c.key(b"\x01" * 32, 320, '{"quality": 75}')
    assert base != c.key(b"\x01" * 32, 160, '{"quality": 76}')
    real = c.fingerprint
    assert "pillow" in real.lower()
    assert "libjpeg" in real
    other = dataclasses.replace(c, fingerprint=real.replace("libjpeg", "libjpeg-other"))
    assert base != other.key(b"\x01" * 32, 160, '{"quality": 75}')


def test_a_pack_with_an_index_longer_than_the_first_read(tmp_path):
    """A task with many images (a large --batch-size, several sizes) makes a pack whose index does
    not fit in the first read of its head: every entry is still found."""
    cache = cache_mod.open_cache(tmp_path / "c", fingerprint()).cache
    n = cache_mod.INDEX_READ // cache_mod._SLOT.size + 50
    keys = [hashlib.sha256(str(i).encode()).digest() for i in range(n)]
    stats = cache_mod.CacheStats()
    pending = cache.pending()
    for i, k in enumerate(keys):
        pending.put(k, b"jpeg %d" % i, stats)
    pending.write()
    warm = cache.renewed()
    assert [warm.get(k, stats) for k in keys] == [b"jpeg %d" % i for i in range(n)]
    assert (stats.written, stats.hits, stats.misses) == (n, n, 0)


def test_two_threads_writing_the_same_pack_both_succeed(tmp_path):
    """With the threading backend two tasks of one process can make the same pack (the same images
    in the same order) at the same moment: neither write may fail."""
    import threading

    cache = cache_mod.open_cache(tmp_path / "c", fingerprint()).cache
    stats = [cache_mod.CacheStats(), cache_mod.CacheStats()]
    start = threading.Barrier(2)

    def writer(st):
        for i in range(200):
            pending = cache.pending()
            pending.put(hashlib.sha256(b"%d" % i).digest(), b"x" * 200_000, st)
            start.wait()  # both at once, every time
            pending.write()

    threads = [threading.Thread(target=writer, args=(st,)) for st in stats]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [(s.written, s.write_errors) for s in stats] == [(200, 0), (200, 0)]
    assert not os.listdir(tmp_path / "c" / "tmp")


# ------------------------------------------------------------------------------ in use: removed only when no build holds it


def test_the_folder_is_removed_only_when_no_build_uses_it_and_holds_only_the_cache(tmp_path):
    root = tmp_path / ".imagenette-cache"
    first, second = cache_mod.open_cache(root, fingerprint()), cache_mod.open_cache(root, fingerprint())
    first.cache.pending().put(b"k" * 32, b"jpeg", cache_mod.CacheStats())  # (nothing written yet)
    assert first.remove() == (None, "another build is using it") and root.is_dir()
    size, why = second.remove()
    assert size > 0 and why == "" and not root.exists()
    assert os.listdir(tmp_path) == []  # (no folder left aside)
    third = cache_mod.open_cache(root, fingerprint())
    (root / "notes.txt").write_text("mine")  # a user's file: the folder is not only the cache's
    assert third.remove() == (None, "it holds 'notes.txt', which the cache did not make")
    assert (root / "notes.txt").read_text() == "mine"


def test_a_build_opening_the_cache_while_another_removes_it_gets_a_working_folder(tmp_path):
    """The removing build holds the lock exclusively; a build opening the cache then waits, finds
    the lock file it opened gone with the folder, and makes the folder again: never a deleted
    folder under it."""
    root = tmp_path / ".imagenette-cache"
    remover = cache_mod.open_cache(root, fingerprint())
    fcntl.flock(remover._fd, fcntl.LOCK_EX)  # the removal has begun
    opened = []
    opener = threading.Thread(target=lambda: opened.append(cache_mod.open_cache(root, fingerprint())))
    opener.start()
    time.sleep(0.3)  # the opener has opened the lock file and waits on it
    assert not opened
    size, _ = remover.remove()
    opener.join(timeout=10)
    [use] = opened
    assert size is not None and root.is_dir()
    lock = root / cache_mod.LOCK
    assert os.stat(lock).st_ino == os.fstat(use._fd).st_ino and (root / "tmp").is_dir()
    stats = cache_mod.CacheStats()
    pending = use.cache.pending()
    pending.put(b"k" * 32, b"jpeg", stats)
    pending.write()
    assert stats.written == 1 and use.remove()[0] > 0


def test_the_default_folder_is_never_a_symlink_and_the_tag_never_written_through_one(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "link").symlink_to(elsewhere)
    with pytest.raises(OSError, match="is a symbolic link"):
        cache_mod.open_cache(tmp_path / "link", fingerprint(), own=True)
    assert os.listdir(elsewhere) == []
    named = tmp_path / "named"
    named.mkdir()
    (named / cache_mod.TAG).symlink_to(tmp_path / "planted")
    cache_mod.open_cache(named, fingerprint()).release()
    assert not (tmp_path / "planted").exists()
