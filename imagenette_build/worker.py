"""The worker's task: read a batch of source images, make each requested size (from the cache where it
has them), and return bytes or a one-line error per image.

A `Task` is plain data (`SourceRef`s, sizes, a `Recipe`, the cache's folder and fingerprint, the run's
`settings`), and so is
its `BatchResult` (bytes or an error string, and cache counters), so a task runs in any process or on
any machine. A bad image never raises here: the build decides whether it stops or skips the image.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import NamedTuple

from . import procs, settings
from .cache import CacheStats, ImageCache, PendingPack
from .sources import SourceRef
from .transform import Recipe, check_full_size, describe_error, make_jpegs


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


class BatchResult(NamedTuple):
    images: list[ImageResult]
    cache: dict[int, CacheStats]  # per pixel size; empty without a cache


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
            if pixel_sizes:
                made = _jpegs(data, identity, pixel_sizes, task.recipe, cache, pending, recipe_json, stats)
            if None in sizes:
                check_full_size(data)
            results.append(ImageResult(tuple(data if s is None else made[s] for s in sizes), None))
        except Exception as exc:  # any decoder failure is a property of the input file
            results.append(ImageResult(None, f"{ref}: {describe_error(exc, data)}"))
        finally:
            data = None
    if pending is not None:
        pending.write()  # the images this task made, as one pack
    return BatchResult(results, stats)


def _jpegs(data: bytes, identity: bytes, sizes: tuple[int, ...], recipe: Recipe, cache: ImageCache | None,
           pending: PendingPack | None, recipe_json: str, stats: dict[int, CacheStats]) -> dict[int, bytes]:
    """{size: JPEG bytes}, from the cache where it has them (made ones are put in `pending`), under
    keys of the source's `identity` (`SourceRef.read_identified`). Making only the missing sizes
    gives the same bytes as making all of them (each size's decode does not depend on the others)."""
    if cache is None or pending is None:
        return dict(zip(sizes, make_jpegs(data, sizes, recipe)))
    keys = {s: cache.key(identity, s, recipe_json) for s in sizes}
    out = {s: cache.get(keys[s], stats[s]) for s in sizes}
    todo = tuple(s for s in sizes if out[s] is None)
    if todo:
        for s, jpeg in zip(todo, make_jpegs(data, todo, recipe)):
            out[s] = jpeg
            pending.put(keys[s], jpeg, stats[s])
    return out
