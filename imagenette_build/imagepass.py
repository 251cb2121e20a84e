"""The build's one pass over the sources: every image's task to the workers (local processes,
started ahead of the pass by `start_workers`, or a Dask cluster), and each result, in plan order,
to every output of every size, the contact sheets and the duplicates search."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

from .cache import CacheStats, ImageCache
from .duplicates import DuplicateFinder
from .engine import Workers, batches, ordered_map
from .formats import Output
from .options import BuildOptions
from .plan import Plan
from .prefetch import Prefetcher
from .procs import worker_setup
from .progress import Progress
from .sheet import BuildSheet
from .worker import Task, process_batch, warm_up


def _runs_on(opts: BuildOptions) -> tuple[str, str | None]:
    """(joblib backend, Dask scheduler or None) of the build's image work."""
    # Full-size copies only read bytes: threads do that as well as processes, without the pickling.
    # Sending them to a cluster would only ship the originals back over the network, so they are
    # read here even with --scheduler.
    if not opts.resizes:
        return "threading", None
    return opts.backend, opts.scheduler


def start_workers(opts: BuildOptions) -> AbstractContextManager[Workers | None]:
    """The build's local worker processes, started now (None where it has none: one job, a
    cluster): made before the scan and the plan, their start-up runs beside them."""
    backend, scheduler = _runs_on(opts)
    if scheduler is not None or opts.jobs == 1:
        return nullcontext(None)
    return Workers(opts.jobs, backend, initializer=(worker_setup, (os.getpid(), True)), warm_up=warm_up,
                   warm_args=(opts.settings,))


def write_images(plan: Plan, opts: BuildOptions, writers: dict[int | None, list[Output]],
                 sheets: dict[int | None, BuildSheet], cache: ImageCache | None, stats: dict[int, CacheStats],
                 found: dict[int | None, DuplicateFinder], progress: Progress,
                 workers: Workers | None = None) -> list[dict]:
    """Resize (in the workers) and pack every image of `plan`, with its provenance, and give each
    size's `found` its fingerprints and `sheets` its images; the images that failed, as
    {"member", "source", "reason"}. Cache counters are added to `stats`. `workers`: already
    started (`start_workers`), else started here."""
    sizes = tuple(writers)
    backend, scheduler = _runs_on(opts)
    client = os.getpid()
    tasks = ((Task([img.ref for img in batch], sizes, opts.recipe, cache, client, scheduler is not None, opts.settings),)
             for batch in batches(plan.images, opts.batch_size))
    # Results held at once: one window of batches. Resized JPEGs are small, so a long window keeps
    # the per-window tail (workers idle while the last batches finish) short; full-size batches
    # carry the originals (~150 kB each), so their window is shorter.
    window = 8 if None in sizes else 32  # batches per worker
    # Each local worker process watches for this process's death from its start (process_batch
    # starts the watch too, for a backend without initializers).
    if workers is not None:
        results = workers.map(process_batch, tasks, window)
    else:
        results = ordered_map(process_batch, tasks, opts.jobs, backend, window, scheduler,
                              initializer=(worker_setup, (client, True)))
    # Local workers read from this machine's disk: read ahead of them (prefetch.py). A cluster's
    # workers read elsewhere; each prefetches its own task (process_batch), and nothing is read here.
    ahead = Prefetcher((img.ref for img in plan.images) if scheduler is None else ())
    broken: list[dict] = []
    images = iter(plan.images)
    written = 0  # members handed to the outputs: each one's index in the plan written (the failed left out)
    with progress.bar("resize", total=len(plan.images), unit="img") as resize_bar, \
            progress.bar("pack", unit_bytes=True) as pack_bar, \
            _closing(results), ahead:
        for batch in results:
            for size, batch_stats in batch.cache.items():
                stats[size].add(batch_stats)
            for outputs_per_size, error, origins, prints in batch.images:
                img = next(images)
                if error is not None:
                    broken.append({"member": img.member, "source": str(img.ref), "reason": error})
                    continue
                for size, data, origin, marks in zip(sizes, outputs_per_size, origins, prints):
                    for out in writers[size]:
                        out.add_image(img, data, origin)
                    if size in sheets:
                        sheets[size].add(img.wnid, img.member, data)
                    if marks is None:  # (a full-size member whose pixels cannot be decoded)
                        found[size].not_compared += 1
                    else:
                        found[size].add(written, img.split, origin.source_sha256, *marks)
                    pack_bar.update(len(data))
                written += 1
            resize_bar.update(len(batch.images))
            ahead.advance(len(batch.images))
    return broken


@contextmanager
def _closing(results: Iterator):
    """Close the workers' result stream as soon as the loop leaves, even on an interrupt (else it
    would happen at exit, with joblib's warning about the tasks it cancelled)."""
    try:
        yield results
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            close = getattr(results, "close", None)
            if close is not None:
                close()
