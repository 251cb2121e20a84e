"""The cache of resized images (cache.py), by itself: entries found by their own full key, a key
that covers everything the bytes depend on, packs whose index is longer than a first read, and
two threads writing the same pack."""

from __future__ import annotations

import dataclasses
import hashlib
import os

from imagenette_build import cache as cache_mod
from imagenette_build.cache import ImageCache
from imagenette_build.toolchain import fingerprint


def _packs(root):
    return sorted((root / cache_mod.PACKS).iterdir())


def test_entries_are_found_by_their_own_key(tmp_path):
    """The index keeps only each key's first 8 bytes: entries that share them are still told apart,
    and a key that is not there is a miss, not damage. Packs written after a worker read the index
    are seen once the cache is renewed (the next pass or build)."""
    cache = cache_mod.open_cache(tmp_path / "c", fingerprint())
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
    cache = cache_mod.open_cache(tmp_path / "c", fingerprint())
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

    cache = cache_mod.open_cache(tmp_path / "c", fingerprint())
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
