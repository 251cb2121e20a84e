"""The build: manifest -> source -> plan -> transform (in parallel) -> pack -> sums and report.

This module only wires the stages together; each stage lives in its own module.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from tqdm import tqdm

from . import manifest as manifests
from . import outputs
from .cache import DEFAULT_DIRNAME as DEFAULT_CACHE_DIRNAME
from .cache import CacheStats, ImageCache, open_cache, remove_stale_temp
from .engine import batches, default_jobs, ordered_map
from .errors import DataError, UserError
from .formats import FORMATS, SHARD_BYTES, Context, Output, OutputFile
from .labels import Labels, classes
from .noisy import NoisyCsv
from .pack import source_date_epoch
from .plan import Plan, make_plan
from .prefetch import Prefetcher
from .sources import open_source
from .toolchain import fingerprint, jpeg_problem, toolchain
from .procs import worker_setup
from .transform import Recipe
from .worker import Task, process_batch

FIRST_FEW = 5
SKIPPED_SHOWN = 20  # images left out by --skip-broken named on stderr (the report has them all)
PROG = "imagenette-build"
TEST_PAUSE_ENV = "IMAGENETTE_BUILD_TEST_PAUSE"  # test-only: see _test_pause


@dataclass(frozen=True)
class BuildOptions:
    imagenet: Path
    manifest: str = "imagenette2"
    sizes: tuple[int | None, ...] = (160,)  # None: full size, original bytes
    out: Path = Path("dist")
    jobs: int = field(default_factory=default_jobs)
    backend: str = "loky"
    scheduler: str | None = None  # a Dask scheduler address: the resize work runs on that cluster
    recipe: Recipe = Recipe()
    batch_size: int = 32
    quiet: bool = False
    use_cache: bool = True  # --no-cache: False
    cache: Path | None = None  # --cache DIR; None: <out>/.imagenette-cache
    skip_broken: bool = False  # build without listed images that are missing or cannot be read
    formats: tuple[str, ...] = ("tgz",)  # formats.FORMATS
    keep_cache: bool = False  # keep the default cache folder after a successful build
    shard_bytes: int = SHARD_BYTES  # parquet and webdataset shards


def size_label(size: int | None) -> str:
    return "full" if size is None else str(size)


def _bar(quiet: bool, **kwargs) -> tqdm:
    return tqdm(file=sys.stderr, disable=quiet, dynamic_ncols=True, mininterval=0.5, **kwargs)


def prepare(opts: BuildOptions) -> Plan:
    """Load the manifest, find the ImageNet copy, and plan every member. Touches no output."""
    source_date_epoch()  # a bad SOURCE_DATE_EPOCH is a usage error: said before the scan, not after
    manifest = manifests.load(opts.manifest)
    source = open_source(opts.imagenet)

    def progress(wnids: Iterable[str]) -> Iterable[str]:
        bar = _bar(opts.quiet, iterable=wnids, desc="scan", unit="class")
        if os.environ.get(TEST_PAUSE_ENV) and wnids:
            return _pause_after_first(bar, "scan")
        return bar

    return make_plan(manifest, source, progress)


def _pause_after_first(items: Iterable, point: str) -> Iterable:
    for i, item in enumerate(items):
        yield item
        if i == 0:
            _test_pause(point)


def check_complete(plan: Plan, skip_missing: bool = False) -> list[dict]:
    """The dataset must be complete: stop, naming what is missing, before anything is written.
    With `skip_missing` (--skip-broken) the missing images are returned as skipped instead."""
    if not plan.images:
        where = "; ".join(plan.empty_classes[:FIRST_FEW])
        raise DataError(f"no images of any manifest class found in {plan.source}: {where}")
    if plan.missing and not skip_missing:
        first = ", ".join(plan.missing[:FIRST_FEW])
        more = f" (classes with no images at all: {'; '.join(plan.empty_classes[:3])})" if plan.empty_classes else ""
        raise DataError(f"{len(plan.missing)} of {len(plan.missing) + len(plan.images)} listed images are "
                        f"missing from {plan.source}, first: {first}{more} (--skip-broken builds without them)")
    return [{"member": m, "source": None, "reason": f"missing from {plan.source}"} for m in plan.missing]


def root_file_contents(plan: Plan) -> dict[str, bytes | NoisyCsv]:
    """The files at the archive root: the manifest's own, then the generated noisy labels (made
    row by row as each archive is written)."""
    manifest = plan.manifest
    files: dict[str, bytes | NoisyCsv] = {name: manifest.read_root_file(name) for name in manifest.root_files}
    if manifest.noisy_labels_file:
        files[manifest.noisy_labels_file] = NoisyCsv(plan, manifest)
    return files


def output_paths(plan: Plan, opts: BuildOptions) -> list[Path]:
    """Every file or folder the build puts in place (the sharded formats: a folder per size)."""
    suffixes = {"tgz": ".tgz", "parquet": "-parquet", "webdataset": "-wds"}
    return [opts.out / f"{plan.manifest.archive_stem(s)}{suffixes[f]}" for s in opts.sizes for f in opts.formats]


def cache_dir(opts: BuildOptions) -> Path | None:
    """Where resized images are cached: --cache DIR, else <out>/.imagenette-cache; None when off
    (--no-cache) or when only full-size archives are built (their bytes are the sources')."""
    if not opts.use_cache or all(s is None for s in opts.sizes):
        return None
    return opts.cache if opts.cache is not None else opts.out / DEFAULT_CACHE_DIRNAME


def run(opts: BuildOptions, plan: Plan) -> list[dict]:
    """Build every requested size, in every requested format, in one pass over the sources; return
    one report per size.

    Safe against interruption at any point (README "Faults, resume and the cache"): outputs are
    written under temporary names, and `_commit` puts each size's in place in an order that leaves
    every final name complete and current. Temporary files of dead earlier runs are removed first.
    """
    skipped = check_complete(plan, opts.skip_broken)
    _warn_not_published(opts)
    _prepare_out_dir(opts.out)
    cache: ImageCache | None = None
    manifest = plan.manifest
    mtime = source_date_epoch()
    started = time.monotonic()
    writers: dict[int | None, list[Output]] = {}
    stats: dict[int, CacheStats] = {}
    built = plan  # the plan minus the images skipped with --skip-broken
    # Another build writing one of these outputs into this folder: refused now, before any image is read.
    locks = _lock_archives(opts.out, output_paths(plan, opts))
    outputs.remove_stale_partials(opts.out)
    try:
        for attempt in (1, 2):
            writers = _open_outputs(built, opts, mtime)
            if attempt == 1:  # after the outputs' files: a folder that cannot be written to says so first
                cache = _open_cache(opts)
                stats = {s: CacheStats() for s in opts.sizes if s is not None and cache is not None}
            elif cache is not None:  # the workers must see the packs the first pass wrote
                cache = cache.renewed()
            broken = _write_images(built, opts, writers, cache, stats, pause=attempt == 1)
            if broken and not opts.skip_broken:
                first = "; ".join(b["reason"] for b in broken[:FIRST_FEW])
                raise DataError(f"{len(broken)} source images could not be read, no archive written "
                                f"(--skip-broken builds without them). First: {first}")
            if not broken:
                break
            if attempt == 2:
                raise DataError(f"{len(broken)} more source images became unreadable during the build "
                                f"(are the files changing?), no archive written. First: {broken[0]['reason']}")
            skipped += broken
            gone = {b["member"] for b in broken}
            built = replace(plan, images=plan.images.without(gone))
            if not built.images:
                raise DataError(f"none of the {len(plan.images)} source images could be read, no archive "
                                f"written. First: {broken[0]['reason']}")
            if not manifest.noisy_labels_file:
                break  # the images left out were never added: the outputs are already right
            # The generated noisy labels (the CSV at the archive root, the labels of each sample) cover
            # every image: write the outputs again without the skipped ones (from the cache, so this
            # pass costs reads, not resizes).
            _abort(writers)
            writers = {}
        files = {size: {o.format: o.close() for o in outs} for size, outs in writers.items()}
        reports = []
        _test_pause("commit")
        with outputs.folder_lock(opts.out):  # the sums files are shared with other builds into --out
            sizes = list(writers)
            for i, size in enumerate(sizes):
                report = _report(built, opts, size, writers[size], files[size], mtime, skipped, cache, stats.get(size))
                rest = [o.final for s in sizes[i + 1:] for o in writers[s]]
                _commit(writers[size], files[size], report, rest)
                reports.append(report)
    except OSError as exc:
        where = (outputs.final_path(Path(exc.filename)) if exc.filename
                 else " and ".join(str(p) for p in output_paths(plan, opts)))
        raise DataError(f"{where}: cannot write: {exc.strerror or exc}") from None
    finally:
        _abort(writers)
        locks.release()
        if cache is not None:  # workers ended mid-write (an interrupt) leave their temporary entries
            remove_stale_temp(Path(cache.root))
    _warn_skipped(skipped)
    _warn_cache_errors(stats)
    _drop_cache(opts, cache)
    if not opts.quiet:
        elapsed = time.monotonic() - started
        for r in reports:
            cached = ""
            if r["cache"]:
                cached = f"; cache: {r['cache']['hits']} reused, {r['cache']['misses']} made"
            for fmt, out in r["outputs"].items():
                total = sum(f["bytes"] for f in out["files"])
                what = out["files"][0]["path"] if fmt == "tgz" else f"{out['folder']}/ ({len(out['files'])} shards)"
                print(f"wrote {opts.out / what} ({total:,} bytes, {r['images']} images) in {elapsed:.1f} s{cached}",
                      file=sys.stderr)
    return reports


def _open_outputs(plan: Plan, opts: BuildOptions, mtime: int) -> dict[int | None, list[Output]]:
    """Every output of every size, opened under temporary names, the root files added."""
    labels = Labels(plan, plan.manifest) if set(opts.formats) - {"tgz"} else None
    root_files = root_file_contents(plan)
    writers: dict[int | None, list[Output]] = {}
    try:
        for size in opts.sizes:
            ctx = Context(opts.out, plan.manifest.archive_stem(size), size, mtime, labels, opts.shard_bytes)
            writers[size] = []
            for fmt in opts.formats:
                out = FORMATS[fmt](ctx)
                writers[size].append(out)
                for name, data in root_files.items():
                    out.add_root_file(name, data)
    except BaseException:
        _abort(writers)
        raise
    return writers


def _abort(writers: dict[int | None, list[Output]]) -> None:
    for outs in writers.values():
        for o in outs:
            o.abort()


def _drop_cache(opts: BuildOptions, cache: ImageCache | None) -> None:
    """The default cache exists for a rerun after an interruption: after a successful build it goes,
    unless the user named a cache folder (a shared, kept one) or asked to keep it."""
    if cache is None or opts.cache is not None or opts.keep_cache:
        return
    root = Path(cache.root)
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file() and not f.is_symlink())
    shutil.rmtree(root, ignore_errors=True)
    if not opts.quiet:
        print(f"removed the resize cache {root} ({size / 1e6:,.0f} MB); --keep-cache keeps it for the next "
              "build", file=sys.stderr)


def fidelity(opts: BuildOptions) -> dict:
    """Can this build's resized images be the published ones? The recipe must be the published one
    and the JPEG library libjpeg-turbo; `problems` says what stands in the way."""
    problems = []
    if not opts.recipe.published:
        differs = [f"{k} {v}" for k, v in vars(opts.recipe).items() if v != getattr(Recipe(), k)]
        problems.append(f"not the published recipe ({', '.join(differs)})")
    jpeg = jpeg_problem()
    if jpeg:
        problems.append(jpeg)
    return {"recipe": opts.recipe.name, "published_recipe": opts.recipe.published,
            "published_bytes_possible": not problems, "problems": problems}


def _warn_not_published(opts: BuildOptions) -> None:
    """The one fault a user cannot see in the bytes: a JPEG library that makes other ones."""
    problem = jpeg_problem()
    if problem and opts.recipe.published and any(s is not None for s in opts.sizes):
        print(f"{PROG}: warning: {problem}", file=sys.stderr)


def _prepare_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"--out {out}: cannot create the folder: {exc.strerror or exc}") from None


def _lock_archives(out: Path, paths: Iterable[Path]) -> outputs.ArchiveLocks:  # (any output: file or folder)
    try:
        return outputs.ArchiveLocks(paths)
    except OSError as exc:
        raise DataError(f"{exc.filename or out}: cannot write: {exc.strerror or exc}") from None


def _open_cache(opts: BuildOptions) -> ImageCache | None:
    where = cache_dir(opts)
    if where is None:
        return None
    try:
        return open_cache(where, fingerprint())
    except OSError as exc:
        if opts.cache is not None:  # asked for by name: the user must fix it
            raise UserError(f"--cache {where}: cannot use it as the cache folder: {exc.strerror or exc}") from None
        print(f"{PROG}: warning: {where}: cannot make the cache folder ({exc.strerror or exc}); "
              "building without a cache", file=sys.stderr)
        return None


def _write_images(plan: Plan, opts: BuildOptions, writers: dict[int | None, list[Output]],
                  cache: ImageCache | None, stats: dict[int, CacheStats], pause: bool = False) -> list[dict]:
    """Resize (in the workers) and pack every image of `plan`; the images that failed, as
    {"member", "source", "reason"}. Cache counters are added to `stats`."""
    sizes = tuple(writers)
    # Full-size copies only read bytes: threads do that as well as processes, without the pickling.
    full_only = all(s is None for s in sizes)
    backend = "threading" if full_only else opts.backend
    # Full-size copies are not resized: sending them to a cluster would only ship the originals
    # back over the network, so they are read here even with --scheduler.
    scheduler = None if full_only else opts.scheduler
    client = os.getpid()
    tasks = ((Task([img.ref for img in batch], sizes, opts.recipe, cache, client, scheduler is not None),)
             for batch in batches(plan.images, opts.batch_size))
    # Results held at once: one window of batches. Resized JPEGs are small, so a long window keeps
    # the per-window tail (workers idle while the last batches finish) short; full-size batches
    # carry the originals (~150 kB each), so their window is shorter.
    window = 8 if None in sizes else 32  # batches per worker
    # Each local worker process watches for this process's death from its start (process_batch
    # starts the watch too, for a backend without initializers).
    results = ordered_map(process_batch, tasks, opts.jobs, backend, window, scheduler,
                          initializer=(worker_setup, (client, True)))
    # Local workers read from this machine's disk: read ahead of them (prefetch.py). A cluster's
    # workers read elsewhere; each prefetches its own task (process_batch), and nothing is read here.
    ahead = Prefetcher((img.ref for img in plan.images) if scheduler is None else ())
    broken: list[dict] = []
    images = iter(plan.images)
    done, half = 0, len(plan.images) // 2
    with _bar(opts.quiet, total=len(plan.images), desc="resize", unit="img") as resize_bar, \
            _bar(opts.quiet, desc="pack", unit="B", unit_scale=True, unit_divisor=1024) as pack_bar, \
            _closing(results), ahead:
        for batch in results:
            for size, batch_stats in batch.cache.items():
                stats[size].add(batch_stats)
            for outputs_per_size, error in batch.images:
                img = next(images)
                if error is not None:
                    broken.append({"member": img.member, "source": str(img.ref), "reason": error})
                    continue
                for size, data in zip(sizes, outputs_per_size):
                    for out in writers[size]:
                        out.add_image(img, data)
                    pack_bar.update(len(data))
            resize_bar.update(len(batch.images))
            ahead.advance(len(batch.images))
            done += len(batch.images)
            if pause and done - len(batch.images) < half <= done:
                _test_pause("resize")
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


def _warn_skipped(skipped: list[dict]) -> None:
    """--skip-broken: every image left out on stderr (also with --quiet: the data is incomplete)."""
    if not skipped:
        return
    shown = skipped if len(skipped) <= SKIPPED_SHOWN else skipped[:SKIPPED_SHOWN]
    print(f"{PROG}: warning: built without {len(skipped)} listed images (--skip-broken); "
          "the build report lists them all:", file=sys.stderr)
    for s in shown:
        print(f"  skipped {s['member']}: {s['reason']}", file=sys.stderr)
    if len(skipped) > len(shown):
        print(f"  ... and {len(skipped) - len(shown)} more", file=sys.stderr)


def _warn_cache_errors(stats: dict[int, CacheStats]) -> None:
    failed = [s for s in stats.values() if s.write_errors]
    if failed:
        total = sum(s.write_errors for s in failed)
        print(f"{PROG}: warning: {total} resized images could not be written to the cache (first: "
              f"{failed[0].first_write_error}); the archives are complete, a rerun will resize them again",
              file=sys.stderr)


def _report(plan: Plan, opts: BuildOptions, size: int | None, writers: list[Output],
            files: dict[str, list[OutputFile]], mtime: int, skipped: list[dict], cache: ImageCache | None,
            stats: CacheStats | None) -> dict:
    m = plan.manifest
    counts = plan.counts()
    by_format = {o.format: o for o in writers}
    report = {
        "archive": None,
        "stem": m.archive_stem(size),
        "size": size_label(size),
        "manifest": {"name": m.name, "sha256": m.sha256, "files": m.file_hashes},
        "source": plan.source,
        "options": {
            "sizes": [size_label(s) for s in opts.sizes],
            "formats": list(opts.formats),
            "recipe": opts.recipe.to_json() if size is not None else "original bytes",
            "jobs": opts.jobs,
            "backend": opts.backend,
            "scheduler": opts.scheduler if any(s is not None for s in opts.sizes) else None,  # where it ran
            "batch_size": opts.batch_size,
            "mtime": mtime,
            "skip_broken": opts.skip_broken,
        },
        "images": len(plan.images),
        "counts": counts,
        # label indices of every loader (torchvision ImageFolder, HF, fastai): sorted WNID order
        "classes": [c.to_json() for c in classes(m)],
        "skipped": skipped,  # --skip-broken: listed images left out, and why
        "root_files": list(m.root_files) + ([m.noisy_labels_file] if m.noisy_labels_file else []),
        "outputs": {fmt: {**({"folder": o.final.name} if fmt != "tgz" else {}),
                          "files": [f.to_json() for f in files[fmt]], **o.describe()}
                    for fmt, o in by_format.items()},
        "fidelity": fidelity(opts) if size is not None else None,
        # Resized images reused from / added to the cache in this run (None: no cache, or full size).
        "cache": ({"dir": cache.root, **stats.to_json()} if cache is not None and stats is not None else None),
    }
    tgz = by_format.get("tgz")
    if tgz is not None:  # the archive's own fields, where verify and older tools look for them
        [f] = files["tgz"]
        described = tgz.describe()
        report.update(archive=f.path, archive_bytes=f.bytes, sha256=f.sha256, md5=f.md5,
                      md5_first_mib=described["md5_first_mib"], tar_sha256=described["tar_sha256"],
                      tar_members=described["tar_members"], members_sha256=described["members_sha256"])
    compressor = tgz.describe()["compressor"] if tgz is not None else None
    report["toolchain"] = toolchain(compressor)
    return report


def _commit(writers: list[Output], files: dict[str, list[OutputFile]], report: dict, rest: list[Path]) -> None:
    """Put one size's finished outputs in place so that, whenever the process dies, every file under
    a final name is complete and current: the old sums lines, report and member list go first, then
    the outputs are renamed in (the archive, then its member list), then the report and the sums
    lines. Each step is one atomic rename, so an interrupt between any two leaves the folder
    consistent too. Called with the folder lock held.

    A failed write after the renames (a full disk) names the file that failed and what the outputs,
    complete and in place, are left without; `rest`: the outputs of this run not yet committed,
    which the error leaves unwritten."""
    out = writers[0].ctx.out
    report_path = out / f"{report['stem']}.json"
    names = [f["path"] for o in report["outputs"].values() for f in o["files"]]
    folders = [o.final.name + "/" for o in writers if o.format != "tgz"]
    outputs.update_sums(out, drop=lambda name: name in names or name.startswith(tuple(folders)))
    report_path.unlink(missing_ok=True)
    tgz = next((o for o in writers if o.format == "tgz"), None)
    if tgz is not None:
        tgz.writer.final_path.with_name(report["members_sha256"]["file"]).unlink(missing_ok=True)
    _test_pause("commit-archive")
    for o in writers:
        o.commit()
    unwritten = f"; not written: {', '.join(map(str, rest))}" if rest else ""
    placed = f"{' and '.join(str(o.final) for o in writers)} {'is' if len(writers) == 1 else 'are'} complete and in place"
    if tgz is not None:
        try:
            tgz.commit_members()
        except OSError as exc:
            raise DataError(f"{tgz.info.members_file}: cannot write the member list: {exc.strerror or exc}; "
                            f"{placed}, without its member list, its report and its lines in SHA256SUMS and "
                            f"MD5SUMS (build again){unwritten}") from None
    _test_pause("commit-report")
    try:
        outputs.write_report(report_path, report)
    except OSError as exc:
        raise DataError(f"{report_path}: cannot write the build report: {exc.strerror or exc}; {placed}, without "
                        f"its report and its lines in SHA256SUMS and MD5SUMS (build again){unwritten}") from None
    _test_pause("commit-sums")
    try:
        outputs.update_sums(out, add={f.path: (f.sha256, f.md5) for fs in files.values() for f in fs})
    except OSError as exc:
        failed = Path(exc.filename or out / "SHA256SUMS")
        lines = "SHA256SUMS and MD5SUMS" if failed.name == "SHA256SUMS" else failed.name
        raise DataError(f"{failed}: cannot write: {exc.strerror or exc}; {placed} with its report, without its "
                        f"line in {lines} (build again){unwritten}") from None
    outputs.sync_dir(out)


def _test_pause(point: str) -> None:
    """Test-only hook (tests/test_interrupt.py): with IMAGENETTE_BUILD_TEST_PAUSE naming `point`
    (comma-separated points: scan, resize, commit, commit-archive, commit-report, commit-sums),
    say so on stderr and sleep IMAGENETTE_BUILD_TEST_PAUSE_SECONDS (60), so that a test can send a
    signal at a known point. Not for users; without the variable it does nothing."""
    wanted = os.environ.get(TEST_PAUSE_ENV)
    if not wanted or point not in wanted.split(","):
        return
    print(f"test-pause {point}", file=sys.stderr, flush=True)
    time.sleep(float(os.environ.get(f"{TEST_PAUSE_ENV}_SECONDS", "60")))


def dry_run_summary(plan: Plan, opts: BuildOptions) -> dict:
    summary = plan.to_json()
    summary["would_write"] = [str(p) for p in output_paths(plan, opts)]
    summary["complete"] = not plan.missing and bool(plan.images)
    return summary


def describe_plan(summary: dict, emit: Callable[[str], None]) -> None:
    emit(f"manifest {summary['manifest']}, source {summary['source']}")
    for split, per_class in summary["counts"].items():
        emit(f"  {split}: {sum(per_class.values())} images in {sum(1 for n in per_class.values() if n)} classes")
        for wnid, n in per_class.items():
            emit(f"    {wnid} {n}")
    emit(f"  found {summary['images']} images, missing {summary['missing']}")
    for member in summary["missing_first"][:FIRST_FEW]:
        emit(f"    missing {member}")
    for line in summary["empty_classes"]:
        emit(f"  empty class {line}")
    for path in summary["would_write"]:
        emit(f"  would write {path}")
