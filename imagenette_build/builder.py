"""The build: prepare (manifest, ImageNet layout, plan) -> write (resize in parallel, every output
under a temporary name) -> commit (each size's outputs, report and sums lines put in place).

This module only wires the stages together; each stage lives in its own module. It prints nothing:
bars, notes and warnings go through the `Progress` it is given.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from . import manifest as manifests
from . import safewrite
from .cache import CacheStats, CacheUse, ImageCache, open_cache, remove_stale_temp
from .commit import commit, final_names, final_names_problem, report
from .duplicates import DuplicateFinder
from .engine import Workers
from .errors import DataError, UserError, cannot, why
from .formats import FORMATS, Context, Output, OutputFile
from .describe import add_documents, contact_sheets
from .labels import Labels
from .leakage import leakage_table
from .noisy import NoisyCsv
from .options import BuildOptions
from .plan import Plan, make_plan
from .imagepass import write_images
from .sheet import BuildSheet
from .progress import Progress
from .sums import SUM_FILES, read_sums
from .readfile import kind_of
from .sources import Source, open_source
from .toolchain import fingerprint, jpeg_problem

FIRST_FEW = 5
SKIPPED_SHOWN = 20  # images left out by --skip-broken named on stderr (the report has them all)


@dataclass
class Written:
    """Every output of every size, complete under its temporary name: what `commit` puts in place."""

    plan: Plan  # the images written: the prepared plan minus those skipped with --skip-broken
    writers: dict[int | None, list[Output]]
    files: dict[int | None, dict[str, list[OutputFile]]]
    skipped: list[dict]
    cache: ImageCache | None
    stats: dict[int, CacheStats]  # per pixel size: what the cache did
    mtime: int
    use: CacheUse | None = None  # held until the build is done with the cache
    sheets: dict[int | None, BuildSheet] | None = None  # per size: the contact sheet of its images
    duplicates: dict[int | None, DuplicateFinder] | None = None  # per size, fed each member written


def prepare(opts: BuildOptions, progress: Progress) -> Plan:
    """Load the manifest, find the ImageNet copy, and plan every member. Touches no output."""
    return make_plan(*open_inputs(opts), progress)


def open_inputs(opts: BuildOptions) -> tuple[manifests.Manifest, Source]:
    """The manifest and the ImageNet copy's layout: their errors come before anything is started."""
    return manifests.load(opts.manifest), open_source(opts.imagenet)


def check_complete(plan: Plan, skip_missing: bool = False) -> list[dict]:
    """The dataset must be complete: stop, naming what is missing, before anything is written.
    With `skip_missing` (--skip-broken) the missing images are returned as skipped instead."""
    if not plan.images:
        where = "; ".join(plan.empty_classes[:FIRST_FEW])
        raise DataError(f"no images of any manifest class found in {plan.found_in}: {where}")
    if plan.missing and not skip_missing:
        first = ", ".join(plan.missing[:FIRST_FEW])
        more = f" (classes with no images at all: {'; '.join(plan.empty_classes[:3])})" if plan.empty_classes else ""
        raise DataError(f"{len(plan.missing)} of {len(plan.missing) + len(plan.images)} listed images are "
                        f"missing from {plan.found_in}, first: {first}{more} (--skip-broken builds without them)")
    return [{"member": m, "source": None, "reason": f"missing from {plan.found_in}"} for m in plan.missing]


def root_file_contents(plan: Plan) -> dict[str, bytes | NoisyCsv]:
    """The files at the archive root: the manifest's own, then the generated noisy labels (made
    row by row as each archive is written)."""
    manifest = plan.manifest
    files: dict[str, bytes | NoisyCsv] = {name: manifest.read_root_file(name) for name in manifest.root_files}
    if manifest.noisy_labels_file:
        files[manifest.noisy_labels_file] = NoisyCsv(plan, manifest)
    return files


def build(opts: BuildOptions, plan: Plan, progress: Progress, workers: Workers | None = None) -> list[dict]:
    """Write and commit every requested size, in every requested format, in one pass over the
    sources; one report per size. `workers`: `start_workers(opts)`'s, else they are started here.

    Safe against interruption at any point (docs/faults.md): outputs are written under temporary
    names, and `commit` puts each size's in place in an order that leaves every final name complete
    and current. Temporary files of dead earlier runs are removed first.
    """
    skipped = check_complete(plan, opts.skip_broken)
    problem = jpeg_problem()
    if problem and opts.recipe.published and opts.resizes:
        progress.warn(problem)  # the one fault a user cannot see in the bytes
    _prepare_out_dir(opts.out)
    started = time.monotonic()
    paths = opts.output_paths(plan.manifest.archive_stem)
    # Another build writing one of these outputs into this folder: refused now, before any image is read.
    locks = _lock_outputs(opts.out, paths)
    written: Written | None = None
    done = False
    try:
        # Something at a final name that the build would write through or replace without having made
        # it (a symlink, a file where a folder goes): refused now, before any image is read.
        names = final_names(opts.out, [plan.manifest.archive_stem(s) for s in opts.sizes], opts.formats)
        problem = final_names_problem(names)
        if problem:
            raise DataError(problem)
        _check_cache_outside(opts, names)
        for sums_file, digest_len in SUM_FILES.items():  # one the commit could not merge into: said now
            read_sums(opts.out / sums_file, digest_len)
        safewrite.remove_stale_partials(opts.out)
        written = write(opts, plan, skipped, progress, workers)
        reports = commit_all(opts, written, progress)
        done = True
    except OSError as exc:
        where = safewrite.final_path(Path(exc.filename)) if exc.filename else " and ".join(map(str, paths))
        raise cannot(where, "write", exc) from None
    finally:
        if written is not None:
            _abort(written.writers)
            if written.cache is not None:  # workers ended mid-write (an interrupt) leave their temporary entries
                remove_stale_temp(Path(written.cache.root))
            if not done and written.use is not None:
                written.use.release()  # (kept for the rerun)
        locks.release()
    try:
        _warn_skipped(written.skipped, progress)
        _warn_cache_errors(written.stats, progress)
        elapsed = time.monotonic() - started
        for r in reports:
            cached = f"; cache: {r['cache']['hits']} reused, {r['cache']['misses']} made" if r["cache"] else ""
            for fmt, out in r["outputs"].items():
                if fmt not in opts.formats:
                    continue  # kept from an earlier build
                docs = FORMATS[fmt].document_names(r["stem"]).values()
                data = [f for f in out["files"] if f["path"] not in docs]
                total = sum(f["bytes"] for f in data) if "folder" in out else data[0]["bytes"]
                what = f"{out['folder']}/ ({len(data)} shards)" if "folder" in out else data[0]["path"]
                progress.result(f"wrote {opts.out / what} ({total:,} bytes, {r['images']} images) in {elapsed:.1f} s"
                              f"{cached}")
    finally:
        _drop_cache(opts, written.use, progress)
    return reports


def write(opts: BuildOptions, plan: Plan, skipped: list[dict], progress: Progress,
          workers: Workers | None = None) -> Written:
    """Resize (in the workers) and write every output under its temporary name. An image that
    cannot be read stops the build, or with --skip-broken is left out: where the outputs carry
    labels generated over every image (noisy labels), they are written a second time without it,
    from the cache. On any failure, nothing written is left."""
    mtime = opts.settings.mtime
    built = plan
    writers: dict[int | None, list[Output]] = {}
    cache: ImageCache | None = None
    use: CacheUse | None = None
    stats: dict[int, CacheStats] = {}
    sheets: dict[int | None, BuildSheet] = {}
    try:
        for attempt in (1, 2):
            writers = _open_outputs(built, opts, mtime)
            sheets = contact_sheets(built, writers)
            found = {size: DuplicateFinder(built.manifest.split.splits) for size in writers}
            if attempt == 1:  # after the outputs' files: a folder that cannot be written to says so first
                use = _open_cache(opts, progress)
                cache = use.cache if use is not None else None
                stats = {s: CacheStats() for s in opts.sizes if s is not None and cache is not None}
            elif cache is not None:  # the workers must see the packs the first pass wrote
                cache = cache.renewed()
            broken = write_images(built, opts, writers, sheets, cache, stats, found, progress, workers)
            if broken and not opts.skip_broken:
                first = "; ".join(b["reason"] for b in broken[:FIRST_FEW])
                raise DataError(f"{len(broken)} source images could not be read, no archive written "
                                f"(--skip-broken builds without them). First: {first}")
            if not broken:
                break
            if attempt == 2:
                raise DataError(f"{len(broken)} more source images became unreadable during the build "
                                f"(are the files changing?), no archive written. First: {broken[0]['reason']}")
            skipped = skipped + broken
            built = replace(plan, images=plan.images.without({b["member"] for b in broken}))
            if not built.images:
                raise DataError(f"none of the {len(plan.images)} source images could be read, no archive "
                                f"written. First: {broken[0]['reason']}")
            if not plan.manifest.noisy_labels_file:
                break  # the images left out were never added: the outputs are already right
            _abort(writers)
            writers = {}
        files = {size: {o.format: o.close() for o in outs} for size, outs in writers.items()}
    except BaseException:
        _abort(writers)
        if cache is not None:
            remove_stale_temp(Path(cache.root))
        if use is not None:
            use.release()
        raise
    return Written(built, writers, files, skipped, cache, stats, mtime, use, sheets, found)


def commit_all(opts: BuildOptions, written: Written, progress: Progress) -> list[dict]:
    """Each size's outputs put in place with its report and sums lines, holding the output folder's
    lock (the sums files are shared with other builds into --out); the reports."""
    progress.stage("commit")
    reports = []
    sizes = list(written.writers)
    made = {size: _with_documents(opts, written, size) for size in sizes}  # (under temporary names)
    with safewrite.folder_lock(opts.out):
        for i, size in enumerate(sizes):
            rest = [o.final for s in sizes[i + 1:] for o in written.writers[s]]
            reports.append(commit(written.writers[size], written.files[size], made[size], rest, progress))
    return reports


def _with_documents(opts: BuildOptions, written: Written, size: int | None) -> dict:
    """The report of one size, after each of its outputs has written its documents (card,
    Croissant, contact sheet: `describe`), which are files of the output like the others."""
    finder = (written.duplicates or {}).get(size)  # (its index of a member is its place in the plan)
    duplicates = finder.result(lambda i: written.plan.images[i].member) if finder else None

    def made() -> dict:
        return report(written.plan, opts, size, written.writers[size], written.files[size], written.mtime,
                      written.skipped, written.cache, written.stats.get(size), duplicates)

    add_documents(written.plan, made(), written.writers[size], written.files[size], (written.sheets or {}).get(size))
    return made()


def _open_outputs(plan: Plan, opts: BuildOptions, mtime: int) -> dict[int | None, list[Output]]:
    """Every output of every size, opened under temporary names, the root files added."""
    labels = Labels(plan, plan.manifest) if any(FORMATS[f].carries_labels for f in opts.formats) else None
    root_files = root_file_contents(plan)
    writers: dict[int | None, list[Output]] = {}
    try:
        for size in opts.sizes:
            ctx = Context(opts.out, plan.manifest.archive_stem(size), size, mtime, labels, opts.shard_size,
                          plan.images, opts.recipe.to_json() if size is not None else None)
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


def _drop_cache(opts: BuildOptions, use: CacheUse | None, progress: Progress) -> None:
    """The default cache exists for a rerun after an interruption: after a successful build it goes,
    unless the user named a cache folder (a shared, kept one) or asked to keep it, or another build
    uses it (it goes after that one)."""
    if use is None:
        return
    if opts.cache is not None or opts.keep_cache:
        use.release()
        return
    size, why = use.remove()
    if size is None:
        progress.note(f"left the resize cache {use.root} in place: {why}")
        return
    amount = f"{size / 1e6:,.0f} MB" if size >= 1e6 else f"{size / 1e3:,.0f} kB"
    progress.note(f"removed the resize cache {use.root} ({amount}); --keep-cache keeps it for the next build")


def _prepare_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        what = "a file" if out.is_file() else kind_of(out.stat().st_mode)
        raise UserError(f"--out {out}: is {what}, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise cannot(f"--out {out}", "create the folder", exc) from None


def _lock_outputs(out: Path, paths: Iterable[Path]) -> safewrite.ArchiveLocks:  # (any output: file or folder)
    try:
        return safewrite.ArchiveLocks(paths)
    except OSError as exc:
        raise cannot(exc.filename or out, "write", exc) from None


def _check_cache_outside(opts: BuildOptions, names: list[tuple[Path, bool]]) -> None:
    """A --cache DIR at or inside a final name would be replaced by the commit, with the images in it."""
    where = opts.cache_dir()
    if where is None:
        return
    real = Path(os.path.realpath(where))
    for path, _ in names:
        final = Path(os.path.realpath(path))
        if final == real or final in real.parents:
            raise UserError(f"--cache {where}: is {'' if final == real else 'inside '}{path}, which the build "
                            "replaces; give a folder outside its outputs")


def _open_cache(opts: BuildOptions, progress: Progress) -> CacheUse | None:
    where = opts.cache_dir()
    if where is None:
        return None
    try:
        return open_cache(where, fingerprint(), own=opts.cache is None)
    except OSError as exc:
        if opts.cache is not None:  # asked for by name: the user must fix it
            raise cannot(f"--cache {where}", "use it as the cache folder", exc, UserError) from None
        progress.warn(f"{where}: cannot make the cache folder ({why(exc)}); building without a cache")
        return None


def _warn_skipped(skipped: list[dict], progress: Progress) -> None:
    """--skip-broken: every image left out on stderr (also with --quiet: the data is incomplete)."""
    if not skipped:
        return
    shown = skipped if len(skipped) <= SKIPPED_SHOWN else skipped[:SKIPPED_SHOWN]
    lines = [f"built without {len(skipped)} listed images (--skip-broken); the build report lists them all:"]
    lines += [f"  skipped {s['member']}: {s['reason']}" for s in shown]
    if len(skipped) > len(shown):
        lines.append(f"  ... and {len(skipped) - len(shown)} more")
    progress.warn("\n".join(lines))


def _warn_cache_errors(stats: dict[int, CacheStats], progress: Progress) -> None:
    failed = [s for s in stats.values() if s.write_errors]
    if failed:
        total = sum(s.write_errors for s in failed)
        progress.warn(f"{total} resized images could not be written to the cache (first: "
                      f"{failed[0].first_write_error}); the archives are complete, a rerun will resize them again")


def dry_run_summary(plan: Plan, opts: BuildOptions) -> dict:
    summary = plan.to_json()
    # Every name the build would put in place: each output (a folder ends in "/") with its documents,
    # each size's report, and the sums files it would add its lines to.
    names = final_names(opts.out, [plan.manifest.archive_stem(s) for s in opts.sizes], opts.formats)
    summary["would_write"] = [f"{path}/" if folder else str(path) for path, folder in names]
    summary["complete"] = not plan.missing and bool(plan.images)
    summary["leakage"] = leakage_table(plan)  # from the file names: known before any image is read
    return summary
