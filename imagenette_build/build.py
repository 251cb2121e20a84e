"""The build: manifest -> source -> plan -> transform (in parallel) -> pack -> sums and report.

This module only wires the stages together; each stage lives in its own module.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from . import manifest as manifests
from . import outputs
from .engine import batches, default_jobs, ordered_map
from .errors import DataError, UserError
from .pack import ArchiveInfo, ArchiveWriter, source_date_epoch
from .noisy import noisy_csv
from .plan import Plan, make_plan
from .sources import open_source
from .toolchain import toolchain
from .transform import Recipe, process_batch

FIRST_FEW = 5


@dataclass(frozen=True)
class BuildOptions:
    imagenet: Path
    manifest: str = "imagenette2"
    sizes: tuple[int | None, ...] = (160,)  # None: full size, original bytes
    out: Path = Path("dist")
    jobs: int = field(default_factory=default_jobs)
    backend: str = "loky"
    recipe: Recipe = Recipe()
    batch_size: int = 32
    quiet: bool = False


def size_label(size: int | None) -> str:
    return "full" if size is None else str(size)


def _bar(quiet: bool, **kwargs) -> tqdm:
    return tqdm(file=sys.stderr, disable=quiet, dynamic_ncols=True, mininterval=0.5, **kwargs)


def prepare(opts: BuildOptions) -> Plan:
    """Load the manifest, find the ImageNet copy, and plan every member. Touches no output."""
    manifest = manifests.load(opts.manifest)
    source = open_source(opts.imagenet)

    def progress(wnids: Iterable[str]) -> Iterable[str]:
        return _bar(opts.quiet, iterable=wnids, desc="scan", unit="class")

    return make_plan(manifest, source, progress)


def check_complete(plan: Plan) -> None:
    """The dataset must be complete: stop, naming what is missing, before anything is written."""
    if not plan.images:
        where = "; ".join(plan.empty_classes[:FIRST_FEW])
        raise DataError(f"no images of any manifest class found in {plan.source}: {where}")
    if plan.missing:
        first = ", ".join(plan.missing[:FIRST_FEW])
        more = f" (classes with no images at all: {'; '.join(plan.empty_classes[:3])})" if plan.empty_classes else ""
        raise DataError(f"{len(plan.missing)} of {len(plan.missing) + len(plan.images)} listed images are "
                        f"missing from {plan.source}, first: {first}{more}")


def root_file_contents(plan: Plan) -> dict[str, bytes]:
    """The files at the archive root: the manifest's own, then the generated noisy labels."""
    manifest = plan.manifest
    files = {name: manifest.read_root_file(name) for name in manifest.root_files}
    if manifest.noisy_labels_file:
        files[manifest.noisy_labels_file] = noisy_csv(plan, manifest)
    return files


def archive_paths(plan: Plan, opts: BuildOptions) -> dict[int | None, Path]:
    return {s: opts.out / f"{plan.manifest.archive_stem(s)}.tgz" for s in opts.sizes}


def run(opts: BuildOptions, plan: Plan) -> list[dict]:
    """Build every requested size in one pass over the sources; return one report per archive."""
    check_complete(plan)
    _prepare_out_dir(opts.out)
    manifest = plan.manifest
    mtime = source_date_epoch()
    started = time.monotonic()
    writers: dict[int | None, ArchiveWriter] = {}
    try:
        root_files = root_file_contents(plan)
        for size, path in archive_paths(plan, opts).items():
            writers[size] = ArchiveWriter(path, manifest.archive_stem(size), mtime)
            for name, data in root_files.items():
                writers[size].add_file(name, data)
        errors = _write_images(plan, opts, writers)
        if errors:
            first = "; ".join(errors[:FIRST_FEW])
            raise DataError(f"{len(errors)} source images could not be read, no archive written. First: {first}")
        infos = {size: w.close() for size, w in writers.items()}
        reports = []
        for size, info in infos.items():
            report = _report(plan, opts, size, info, mtime)
            _commit(writers[size], info, report)
            reports.append(report)
    except OSError as exc:
        raise DataError(f"{getattr(exc, 'filename', None) or opts.out}: cannot write: "
                        f"{exc.strerror or exc}") from None
    finally:
        for w in writers.values():
            w.abort()
    if not opts.quiet:
        elapsed = time.monotonic() - started
        for r in reports:
            print(f"wrote {opts.out / r['archive']} ({r['archive_bytes']:,} bytes, {r['images']} images) "
                  f"in {elapsed:.1f} s", file=sys.stderr)
    return reports


def _prepare_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"--out {out}: cannot create the folder: {exc.strerror or exc}") from None


def _write_images(plan: Plan, opts: BuildOptions, writers: dict[int | None, ArchiveWriter]) -> list[str]:
    sizes = tuple(writers)
    # Full-size copies only read bytes: threads do that as well as processes, without the pickling.
    backend = "threading" if all(s is None for s in sizes) else opts.backend
    tasks = ((([img.ref for img in batch]), sizes, opts.recipe) for batch in batches(plan.images, opts.batch_size))
    # Results held at once: one window of batches. Resized JPEGs are small, so a long window keeps
    # the per-window tail (workers idle while the last batches finish) short; full-size batches
    # carry the originals (~150 kB each), so their window is shorter.
    window = (8 if None in sizes else 32) * opts.jobs
    results = ordered_map(process_batch, tasks, opts.jobs, backend, window)
    errors: list[str] = []
    images = iter(plan.images)
    with _bar(opts.quiet, total=len(plan.images), desc="resize", unit="img") as resize_bar, \
            _bar(opts.quiet, desc="pack", unit="B", unit_scale=True, unit_divisor=1024) as pack_bar:
        for batch_results in results:
            for outputs_per_size, error in batch_results:
                img = next(images)
                if error is not None:
                    errors.append(error)
                    continue
                for size, data in zip(sizes, outputs_per_size):
                    writers[size].add_file(img.member, data)
                    pack_bar.update(len(data))
            resize_bar.update(len(batch_results))
    return errors


def _report(plan: Plan, opts: BuildOptions, size: int | None, info: ArchiveInfo, mtime: int) -> dict:
    m = plan.manifest
    counts = plan.counts()
    return {
        "archive": info.path.name,
        "stem": m.archive_stem(size),
        "size": size_label(size),
        "manifest": {"name": m.name, "sha256": m.sha256, "files": m.file_hashes},
        "source": plan.source,
        "options": {
            "sizes": [size_label(s) for s in opts.sizes],
            "recipe": opts.recipe.to_json() if size is not None else "original bytes",
            "jobs": opts.jobs,
            "backend": opts.backend,
            "batch_size": opts.batch_size,
            "mtime": mtime,
        },
        "images": len(plan.images),
        "counts": counts,
        "root_files": list(m.root_files) + ([m.noisy_labels_file] if m.noisy_labels_file else []),
        "archive_bytes": info.size,
        "sha256": info.sha256,
        "md5": info.md5,
        "md5_first_mib": info.md5_first_mib,
        "tar_sha256": info.tar_sha256,
        "tar_members": info.members,
        "toolchain": toolchain(),
    }


def _commit(writer: ArchiveWriter, info: ArchiveInfo, report: dict) -> None:
    """Put a finished archive in place so that, whenever the process dies, every file under a
    final name is complete and current: the old sums lines and report go first, then the archive
    is renamed in, then its report and sums lines are written."""
    out = info.path.parent
    name = info.path.name
    report_path = out / f"{report['stem']}.json"
    outputs.set_sums(out, name, {"SHA256SUMS": None, "MD5SUMS": None})
    report_path.unlink(missing_ok=True)
    writer.commit()
    outputs.write_report(report_path, report)
    outputs.set_sums(out, name, {"SHA256SUMS": info.sha256, "MD5SUMS": info.md5})


def dry_run_summary(plan: Plan, opts: BuildOptions) -> dict:
    summary = plan.to_json()
    summary["would_write"] = [str(p) for p in archive_paths(plan, opts).values()]
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
