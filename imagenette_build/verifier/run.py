"""The pass: read the archive once as a stream, send its member bytes to the workers in batches
bounded in count and bytes (and in bytes in flight), tally their results, then judge each level.
A folder of shards, or a shard, goes to `shards`."""

from __future__ import annotations

from collections.abc import Iterator

from ..archive_reader import ArchiveStream
from ..errors import UserError
from ..limits import BATCH_BYTES
from ..progress import Progress
from ..published import published_uploads
from .checking import BATCH_IMAGES, Checking
from .identity import identity_level
from .memberlists import members_level, published_member_lists
from .report import Report
from .shards import check_shards
from .shardtarget import shard_target
from .structure import StructureScan, structure_level
from .target import VerifyOptions, resolve_target


def _tasks(stream: ArchiveStream, scan: StructureScan, checking: Checking) -> Iterator[tuple]:
    """Worker tasks from the stream: batches of member bytes, bounded in count and in bytes."""
    batch: list[tuple] = []
    size = 0
    for entry in stream.entries():
        rel = scan.add(entry)
        if rel is not None:
            batch.append(checking.item(entry.name, entry.data, rel))
            size += len(entry.data)
        del entry  # its bytes are not held while the stream reads the next member
        if len(batch) >= BATCH_IMAGES or size >= BATCH_BYTES:
            yield batch, checking.spec
            batch, size = [], 0
    if batch:
        yield batch, checking.spec


def check(opts: VerifyOptions) -> Report:
    """Every level of `opts.archive` (a .tgz, a folder of shards or a shard); a UserError for what
    is not a verdict (no such file, an unknown manifest, an I/O error while reading)."""
    shards = shard_target(opts)
    if shards is not None:
        return check_shards(shards, opts)
    target = resolve_target(opts)
    published = published_uploads(opts.published_csv, target.manifest.published if target.manifest else ())
    published_members = published_member_lists(target.manifest, target.stem)
    checking = Checking.of(target, opts)
    noisy = target.manifest.noisy_labels_file if target.manifest is not None else None
    scan = StructureScan(target.stem, (noisy,) if noisy else ())
    with ArchiveStream(target.path) as stream, \
            Progress(opts.quiet).bar("verify", total=checking.expected_images(), unit="img") as bar:
        checking.run(_tasks(stream, scan, checking), opts.jobs, bar, lambda r: r.member.partition("/")[2])
    if stream.io_error:
        raise UserError(stream.io_error)

    levels = [identity_level(target, stream.digests(), published),
              structure_level(scan, target.manifest, stream.problem, opts.strict),
              members_level(scan, target, published_members)]
    return Report(target, levels + checking.levels(stream.complete))
