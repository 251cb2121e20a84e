"""The worker's task: read a batch of source images, make each requested size (from the cache where it
has them), and return bytes or a one-line error per image.

A `Task` is plain data (`SourceRef`s, sizes, a `Recipe`, the cache's folder and fingerprint, the run's
`settings`), and so is its `BatchResult` (per image: bytes, their provenance and duplicates
fingerprint, or an error string; and cache counters), so a task runs in any process or on any
machine. A bad image never raises here: the build decides whether it stops or skips the image.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import NamedTuple

from PIL import Image

from . import procs, settings
from .cache import CacheStats, ImageCache, PendingPack
from .duplicates import fingerprint_file, image_phash, member_fingerprint
from .provenance import Origin
from .sources import SourceRef
from .transform import Recipe, check_full_size, describe_error, make_jpegs, resize

Fingerprint = tuple[bytes, int]  # `duplicates.fingerprint`: (pixel hash, pHash)
_PHASH_BYTES = 8  # a cache entry's payload: the resized image's pHash, then its JPEG


@dataclass(frozen=True)
class Task:
    refs: list[SourceRef]
    sizes: tuple[int | None, ...]  # pixel sizes, None for full size (the source's bytes, checked)
    recipe: Recipe
    cache: ImageCache | None = None
    client_pid: int | None = None  # the building process: a worker that is its child ends when it is gone
    # Ask the kernel to read every file of the batch first (a cluster's workers; a local build reads
    # ahead of its workers in the building process, prefetch.py).
    prefetch: bool = False
    # The run's settings (the resampler, its engine): a worker uses the parent's, not its own environment's.
    settings: settings.Settings | None = None


class ImageResult(NamedTuple):
    outputs: tuple[bytes, ...] | None  # one per requested size, in order; None on error
    error: str | None  # "<source>: <what is wrong>", one line
    origins: tuple[Origin, ...] | None = None  # per size: the source's and the member's sha256
    # per size: the member's `duplicates.fingerprint`; None for a full-size member that cannot be
    # decoded (its bytes are copied as they are: `check_full_size` does not decode a JPEG)
    fingerprints: tuple[Fingerprint | None, ...] | None = None


class BatchResult(NamedTuple):
    images: list[ImageResult]
    cache: dict[int, CacheStats]  # per pixel size; empty without a cache


def warm_up(run: settings.Settings | None) -> int:
    """Run once in each new worker before its first task (`engine.Workers`): importing this module
    imports what a task needs (PIL, numpy, the resampler), and a tiny resize loads the resampler's
    compiled passes where they are computed here (stock Pillow), so the first batch finds the
    worker ready. Its process id."""
    if run is not None:
        settings.install(run)
    resize(Image.new("RGB", (8, 8)), (4, 4), "bicubic")
    return os.getpid()


def process_batch(task: Task) -> BatchResult:
    """For each of the task's refs, its outputs per size or an error message. With a cache, each
    resized image is looked up under the identity of the file just read (plus recipe, size and
    toolchain) and written there when it had to be made."""
    if task.client_pid is not None:
        procs.worker_setup(task.client_pid)
    if task.settings is not None:
        settings.install(task.settings)
    sizes, cache = task.sizes, task.cache
    pixel_sizes = tuple(s for s in sizes if s is not None)
    stats = {s: CacheStats() for s in pixel_sizes} if cache is not None else {}
    pending = cache.pending() if cache is not None and pixel_sizes else None
    recipe_json = json.dumps(task.recipe.to_json(), sort_keys=True)
    if task.prefetch:  # the disk reads the batch's files while the first ones are decoded
        for ref in task.refs:
            ref.prefetch()
    results = []
    for ref in task.refs:
        data = None
        try:
            data, identity = ref.read_identified()
            source = hashlib.sha256(data).hexdigest()
            made = _jpegs(data, identity, pixel_sizes, task.recipe, cache, pending, recipe_json, stats) \
                if pixel_sizes else {}
            outputs, origins, prints = [], [], []
            for size in sizes:
                if size is None:
                    check_full_size(data)
                    outputs.append(data)
                    origins.append(Origin(source, source))
                    prints.append(_file_fingerprint(data))
                    continue
                jpeg, code = made[size]
                member = hashlib.sha256(jpeg)
                outputs.append(jpeg)
                origins.append(Origin(source, member.hexdigest()))
                # A resized member's bytes identify its pixels (`duplicates.member_fingerprint`):
                # their sha256, computed for its provenance anyway, serves as the pixel hash.
                prints.append(member_fingerprint(member.digest(), code))
            results.append(ImageResult(tuple(outputs), None, tuple(origins), tuple(prints)))
        except Exception as exc:  # any decoder failure is a property of the input file
            results.append(ImageResult(None, f"{ref}: {describe_error(exc, data)}"))
        finally:
            data = None
    if pending is not None:
        pending.write()  # the images this task made, as one pack
    return BatchResult(results, stats)


def _jpegs(data: bytes, identity: bytes, sizes: tuple[int, ...], recipe: Recipe, cache: ImageCache | None,
           pending: PendingPack | None, recipe_json: str, stats: dict[int, CacheStats]) -> dict[int, tuple[bytes, int]]:
    """{size: (JPEG bytes, pHash of the resized pixels)}, from the cache where it has them (made
    ones are put in `pending`, the pHash before the JPEG), under keys of the source's `identity`
    (`SourceRef.read_identified`). Making only the missing sizes gives the same bytes as making all
    of them (each size's decode does not depend on the others)."""
    codes: dict[int, int] = {}

    def seen(size, img) -> None:
        codes[size] = image_phash(img)

    if cache is None or pending is None:
        return {s: (jpeg, codes[s]) for s, jpeg in zip(sizes, make_jpegs(data, sizes, recipe, seen))}
    keys = {s: cache.key(identity, s, recipe_json) for s in sizes}
    out = {s: _unpacked(cache.get(keys[s], stats[s])) for s in sizes}
    todo = tuple(s for s in sizes if out[s] is None)
    if todo:
        for s, jpeg in zip(todo, make_jpegs(data, todo, recipe, seen)):
            out[s] = (jpeg, codes[s])
            pending.put(keys[s], codes[s].to_bytes(_PHASH_BYTES, "little") + jpeg, stats[s])
    return out


def _unpacked(payload: bytes | None) -> tuple[bytes, int] | None:
    """A cache entry's (JPEG, pHash); None for a miss (or an entry too short to hold both)."""
    if payload is None or len(payload) <= _PHASH_BYTES:
        return None
    return payload[_PHASH_BYTES:], int.from_bytes(payload[:_PHASH_BYTES], "little")


def _file_fingerprint(data: bytes) -> Fingerprint | None:
    """A full-size member's fingerprint, or None when its pixels cannot be decoded (the member is
    its source's bytes as they are: that is no reason to refuse it)."""
    try:
        return fingerprint_file(data)
    except Exception:  # noqa: BLE001 - any decoder failure: the member is simply not compared
        return None
