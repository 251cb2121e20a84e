"""The pass: plan the sources, read the archive once as a stream, send its member bytes to the
workers in batches bounded in count and bytes (and in bytes in flight), tally their results, then
judge each level."""

from __future__ import annotations

import hashlib
import heapq
import os
from collections.abc import Iterable, Iterator

from ..archive_reader import ArchiveStream
from ..engine import ordered_map
from ..errors import UserError
from ..limits import BATCH_BYTES, IN_FLIGHT_BYTES_PER_JOB
from ..plan import Plan, make_plan
from ..procs import worker_setup
from ..progress import Progress
from ..published import published_uploads
from ..sources import open_source
from ..toolchain import jpeg_problem
from .checks import CheckSpec, check_batch
from .identity import identity_level
from .memberlists import members_level, published_member_lists
from .report import Report
from .structure import StructureScan, structure_level
from .tally import PSNR_PASS_DB, ImageTally, SourceTally
from .target import Target, VerifyOptions, resolve_target

BATCH_IMAGES = 32


def sample_members(members: Iterable[str], n: int) -> set[str]:
    """A deterministic sample: the first n members by sha256 of their path (holding n, not all)."""
    return set(heapq.nsmallest(n, members, key=lambda m: hashlib.sha256(m.encode()).hexdigest()))


def _plan(target: Target, opts: VerifyOptions) -> Plan:
    if target.manifest is None:
        raise UserError(f"--imagenet needs the archive's manifest: {target.manifest_note}; give --manifest")
    return make_plan(target.manifest, open_source(opts.imagenet), Progress(opts.quiet))


def _tasks(stream: ArchiveStream, scan: StructureScan, plan: Plan | None, sample: set[str],
           spec: CheckSpec) -> Iterator[tuple]:
    """Worker tasks from the stream: batches of member bytes, bounded in count and in bytes."""
    batch: list[tuple] = []
    size = 0
    for entry in stream.entries():
        rel = scan.add(entry)
        if rel is not None:
            planned = plan.images.find(rel) if plan is not None else None
            batch.append((entry.name, entry.data, planned.ref if planned else None, rel in sample))
            size += len(entry.data)
        del entry  # its bytes are not held while the stream reads the next member
        if len(batch) >= BATCH_IMAGES or size >= BATCH_BYTES:
            yield batch, spec
            batch, size = [], 0
    if batch:
        yield batch, spec


def _task_bytes(task: tuple) -> int:
    batch, _ = task
    return sum(len(data) for _, data, _, _ in batch)


def _expected_images(target: Target, plan: Plan | None) -> int | None:
    if plan is not None:
        return len(plan.images) + len(plan.missing)
    if target.manifest is not None and target.manifest.split.policy == "files":
        return len(target.manifest.listed_images())
    return None


def verify(opts: VerifyOptions) -> Report:
    """Every level of `opts.archive`; a UserError for what is not a verdict (no such file, an
    unknown manifest, an I/O error while reading)."""
    target = resolve_target(opts)
    published = published_uploads(opts.published_csv, target.manifest)
    published_members = published_member_lists(target.manifest, target.stem)
    plan = _plan(target, opts) if opts.imagenet is not None else None
    sweeping = plan is not None and target.size is not None and opts.grid.sample > 0
    grid = opts.grid.recipes(target.recipe) if sweeping else ()
    spec = CheckSpec(target.size, target.recipe, grid)
    sample = sample_members(plan.images.members(), opts.grid.sample) if sweeping else set()

    images = ImageTally(target.size)
    exact = target.recipe.published and jpeg_problem() is None
    sources = SourceTally(plan, target.size, PSNR_PASS_DB, grid, exact) if plan else None
    noisy = target.manifest.noisy_labels_file if target.manifest is not None else None
    scan = StructureScan(target.stem, (noisy,) if noisy else ())
    with ArchiveStream(target.path) as stream, \
            Progress(opts.quiet).bar("verify", total=_expected_images(target, plan), unit="img") as bar:
        tasks = _tasks(stream, scan, plan, sample, spec)
        # Workers watch this process as a build's do: after a kill -9 of verify they end too.
        watch = (worker_setup, (os.getpid(), True))
        in_flight = (IN_FLIGHT_BYTES_PER_JOB * opts.jobs, _task_bytes)
        for results in ordered_map(check_batch, tasks, opts.jobs, "loky", initializer=watch, window_bytes=in_flight):
            for r in results:
                images.add(r)
                if sources is not None:
                    sources.add(r, r.member.partition("/")[2])
            bar.update(len(results))
    if stream.io_error:
        raise UserError(stream.io_error)

    levels = [identity_level(target, stream.digests(), published),
              structure_level(scan, target.manifest, stream.problem, opts.strict),
              members_level(scan, target, published_members),
              images.level(stream.complete)]
    if sources is not None:
        levels.append(sources.level())
        problem = jpeg_problem()
        if problem and target.recipe.published and target.size is not None:
            levels[-1].notes.append(f"compared by PSNR, not byte for byte: {problem}")
    return Report(target, levels)
