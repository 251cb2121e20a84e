"""`verify` of a folder of shards (a parquet or WebDataset output) or one shard: the levels of a
.tgz, with the shards as the folder's identity.

1. identity: every shard listed in SHA256SUMS, MD5SUMS or the report's `outputs.<format>` is in
   the folder, a regular file, of the listed size and hashes; nothing else is there.
2. structure: each shard reads whole (`shardread`), is named `<split>-NNNNN-of-NNNNN`, the
   numbers of each split complete; each row's split, class and label are the report's (its
   `classes`: the label is its WNID's index; a sample's .cls is its JSON's label); the rows per
   split and class are the report's `counts`, and the members the manifest's list.
3. members, 4. images and 5. source: as for a .tgz (`memberlists`, `checking`), each row being the
   member its `image.path` or its JSON's `member` names; and each row's provenance (its columns, or
   its JSON's fields: `provenance.FIELDS`) must be its own: `member_sha256` the sha256 of its image,
   `member` its member, `source_file` and `source_split` its file name's.

Nothing depends on the order of the rows or the number of shards. The folder is read shard by
shard in name order, one row group or sample at a time.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections import Counter
from collections.abc import Iterator

from ..errors import UserError, cannot, why
from ..formats.webdataset import sample_key
from ..labels import classes as manifest_classes
from ..limits import BATCH_BYTES, MAX_MEMBERS, MAX_NAME_BYTES, MAX_NAMES_BYTES, MAX_SHARDS
from ..progress import Progress
from ..provenance import source_split
from ..readfile import kind_of
from ..safepath import UnsafeName, member_parts
from .checking import BATCH_IMAGES, Checking
from .memberlists import members_level, published_member_lists
from .report import FirstFew, Report, counted
from .shardlevels import identity_level, structure_level
from .shardread import ParquetReader, Row, WebDatasetReader
from .shardtarget import ShardTarget, shard_name_re
from .target import VerifyOptions

SHOWN = 200  # characters of a value read from a row, in a message or the counts


def _classes(target: ShardTarget) -> tuple[dict[str, tuple[int, str]] | None, str | None]:
    """{wnid: (index, name)}: the report's `classes`, else the manifest's; and a problem when the
    report's cannot be read."""
    listed = (target.report or {}).get("classes")
    if listed is None:
        if target.manifest is None:
            return None, None
        return {c.wnid: (c.index, c.name) for c in manifest_classes(target.manifest)}, None
    if isinstance(listed, list) and len(listed) <= MAX_MEMBERS and all(
            isinstance(c, dict) and type(c.get("index")) is int and isinstance(c.get("wnid"), str)
            and isinstance(c.get("name"), str) for c in listed):
        return {c["wnid"]: (c["index"], c["name"]) for c in listed}, None
    return None, f"{target.stem}.json: its classes are not a list of index, wnid and name: labels not checked"


class ShardScan:
    """What the shards held, row by row (`add`), and which files the folder holds (`files`)."""

    def __init__(self, target: ShardTarget, strict: bool):
        self.target = target
        self.strict = strict
        self.name_re = shard_name_re(target.ext)
        self.classes, self.classes_problem = _classes(target)
        manifest = target.manifest
        self.unlabelled = {e.name for e in manifest.split.extra} if manifest is not None else set()
        self.files: dict[str, str] = {}  # every name in the folder: its kind ("file", "a symbolic link", ...)
        self.listing_problem = self._list_folder()
        self.read: dict[str, object] = {}  # shard read: its digests (None: it broke before its end was hashed)
        self.unread: dict[str, str] = {}  # shard not read: why
        self.counts: Counter[tuple[str, str]] = Counter()
        self.digests: dict[str, str] = {}  # member -> sha256 of its image
        self.shard_of: dict[str, str] = {}  # member -> the shard that holds it
        self.keys: set[str] = set()  # WebDataset sample keys
        self.rows = self.name_bytes = 0
        self.full: str | None = None  # more rows than verify holds: the rest was not read
        self.complete = True  # every row of every shard was read
        self.broken, self.unsafe, self.bad, self.malformed = FirstFew(), FirstFew(), FirstFew(), FirstFew()
        self.duplicates, self.too_large, self.misplaced, self.labels = FirstFew(), FirstFew(), FirstFew(), FirstFew()
        self.no_member = FirstFew()
        self.provenance = FirstFew()  # rows whose provenance is not their own
        self.no_provenance = 0  # rows without provenance (shards of an earlier version)

    def _list_folder(self) -> str | None:
        folder = self.target.folder
        try:
            with os.scandir(folder) as it:
                for entry in it:
                    if len(self.files) == MAX_SHARDS:
                        return f"{folder}: more than {MAX_SHARDS:,} files, more than verify reads"
                    mode = entry.stat(follow_symlinks=False).st_mode
                    self.files[entry.name] = ("file" if stat.S_ISREG(mode) else
                                              "a symbolic link" if stat.S_ISLNK(mode) else kind_of(mode))
        except OSError as exc:
            raise cannot(folder, "read", exc, UserError) from None
        return None

    def to_read(self) -> list[str]:
        """The shards to read: one given, else those listed (or, with no list, those named as shards)."""
        if self.target.only is not None:
            names = [self.target.only]
        else:
            names = sorted(self.target.listed or (n for n in self.files if self.name_re.fullmatch(n)))
        for name in names:
            kind = self.files.get(name)
            if kind != "file":
                self.unread[name] = "not in the folder" if kind is None else f"{kind}, not a shard the build wrote"
        return [n for n in names if n not in self.unread]

    def extra(self) -> list[str]:
        """Files in the folder that are not read: neither listed nor (with no list) named as shards."""
        if self.target.only is not None:
            return []
        wanted = (self.target.listed or {n for n in self.files if self.name_re.fullmatch(n)}) | \
            self.target.listed_documents | set(self.unlisted_documents())
        return sorted(n for n in self.files if n not in wanted)

    def unlisted_documents(self) -> list[str]:
        """The folder's documents (card, Croissant, contact sheet) when nothing lists the folder (a
        copy of the folder alone, as the Hub serves it): known by name, not checked, never shards."""
        if self.target.only is not None or self.target.listed or self.target.listed_documents:
            return []
        return sorted(n for n in self.target.documents if self.files.get(n) == "file")

    def named(self, rel: str) -> str:
        """A member in messages: `<shard>/<member>`."""
        shard = self.shard_of.get(rel)
        return f"{shard}/{rel}" if shard else rel

    def finish(self, shard: str, reader) -> None:
        self.read[shard] = reader.digests
        for attr in ("unsafe", "bad"):
            for item in getattr(reader, attr):
                getattr(self, attr).append(f"{shard}: {item}")
        if reader.problem:
            self.broken.append(f"{shard} ({reader.problem})")
        self.complete = self.complete and reader.complete

    def add(self, row: Row, shard: str, split: str | None) -> tuple[str, bytes, str | None] | None:
        """Record a row; (its name, its image, its member) when its image is to be checked."""
        if row.problem:
            self.malformed.append(f"{shard}: {row.where} ({row.problem})")
            return None
        self.rows += 1
        if self.rows > MAX_MEMBERS or self.name_bytes > MAX_NAMES_BYTES:
            self.full = (f"more than {MAX_MEMBERS:,} rows or {MAX_NAMES_BYTES:,} bytes of member names, more than "
                         "verify holds; the rest was not read")
            return None
        rel = self._member(row, shard)
        if self.target.format == "webdataset":
            self.name_bytes += len(row.where)
            if row.where in self.keys:
                self.duplicates.append(f"{shard}: {row.where}")
                return None
            self.keys.add(row.where)
        name = f"{shard}/{rel or row.where}"
        if rel is not None:
            if rel in self.digests:
                self.duplicates.append(name)
                return None
            self.shard_of[rel] = shard
        self._check_labels(row, name, rel, split)
        if row.too_large is not None:
            self.too_large.append(f"{name} ({row.too_large:,} bytes)")
            return None
        if rel is not None:
            self.digests[rel] = hashlib.sha256(row.data).hexdigest()
            self._check_provenance(row.provenance, name, rel, self.digests[rel])
        return name, row.data, rel

    def _check_provenance(self, said: dict | None, name: str, rel: str, digest: str) -> None:
        """The row's provenance against its image and member (its source's sha256 cannot be
        checked without the source: the source level compares the pixels)."""
        if said is None:
            self.no_provenance += 1
            return
        file = rel.rpartition("/")[2]
        want = {"member_sha256": digest, "member": rel, "source_file": file, "source_split": source_split(file)}
        wrong = [f"{k} {str(said.get(k))[:SHOWN]!r}" for k, v in want.items() if said.get(k) != v]
        source = said.get("source_sha256")
        if not (isinstance(source, str) and len(source) == 64 and all(c in "0123456789abcdef" for c in source)):
            wrong.append(f"source_sha256 {str(source)[:SHOWN]!r}")
        if wrong:
            self.provenance.append(f"{name} ({', '.join(wrong)})")

    def _member(self, row: Row, shard: str) -> str | None:
        """The row's member path, when it names one in normal form (train/<wnid>/<file>, unsup/<file>)."""
        if row.member is None and self.target.format == "webdataset":
            self.no_member.append(f"{shard}/{row.where}")
            return None
        try:
            if isinstance(row.member, str) and len(row.member) > MAX_NAME_BYTES:
                raise UnsafeName(f"{len(row.member):,} characters, longer than a member name may be")
            parts = member_parts(row.member) if isinstance(row.member, str) else None
        except UnsafeName as exc:
            parts, why = None, str(exc)
        else:
            why = "not a path below the top folder" if parts is not None else "not a string"
        if parts is None or len(parts) not in (2, 3):
            self.malformed.append(f"{shard}: {row.where} (its member {str(row.member)[:SHOWN]!r}: {why})")
            return None
        rel = "/".join(parts)
        self.name_bytes += len(rel)
        if self.target.format == "webdataset" and row.where not in (sample_key(rel, False), sample_key(rel, True)):
            self.malformed.append(f"{shard}: {row.where} (the key is not that of its member {rel})")
        return rel

    def _check_labels(self, row: Row, name: str, rel: str | None, split: str | None) -> None:
        """Split, class and label, against the shard's name, the member's path and the classes."""
        parts = rel.split("/") if rel else []
        json_split = _short(row.split) if self.target.format == "webdataset" and row.split is not None else None
        claims = {"the shard's name": split, "the member's path": parts[0] if parts else None,
                  "the sample's JSON": json_split}
        said = {s for s in claims.values() if s is not None}
        if len(said) > 1:
            self.misplaced.append(f"{name} (split " + ", ".join(f"{s} by {w}" for w, s in claims.items() if s) + ")")
        wnid = _short(row.wnid)
        if len(parts) == 3 and parts[1] != wnid:
            self.misplaced.append(f"{name} (in class folder {parts[1]}, of class {str(row.wnid)[:SHOWN]})")
        row_split = split or (parts[0] if parts else _short(row.split))
        self.counts[(row_split, wnid)] += 1
        if self.classes is None:
            return
        # Without a manifest the unlabelled splits are not known: a row that says it is unlabelled is taken at its word.
        says_unlabelled = row.label is None if self.target.format == "webdataset" else row.label == -1
        unlabelled = row_split in self.unlabelled or (self.target.manifest is None and says_unlabelled)
        index, class_name = self.classes.get(wnid, (None, None))
        if index is None and not unlabelled:
            self.labels.append(f"{name} (class {str(row.wnid)[:SHOWN]!r} is not one of the report's classes)")
            return
        want = -1 if unlabelled else index  # the label a parquet row and a .cls hold
        if self.target.format == "parquet":
            wrong = [] if type(row.label) is int and row.label == want else [f"label {str(row.label)[:20]}"]
        else:  # the JSON's label is null for an unlabelled split
            ok = row.label is None if unlabelled else type(row.label) is int and row.label == want
            wrong = [] if ok else [f"label {str(row.label)[:20]}"]
            wrong += [] if row.cls == want else [f".cls {str(row.cls)[:20]}"]
            wrong += [] if row.name == (None if unlabelled else class_name) else [f"name {str(row.name)[:SHOWN]!r}"]
        if wrong:
            where = f"split {row_split} is unlabelled" if unlabelled else f"{wnid} is class {want}"
            self.labels.append(f"{name} ({', '.join(wrong)} where {where})")


def _short(value) -> str:
    """A WNID or split as the counts hold it: a string of at most SHOWN characters, else "?" (the
    counts hold one per class, not one per hostile row)."""
    return value if isinstance(value, str) and len(value) <= SHOWN else "?"


def _tasks(scan: ShardScan, checking: Checking) -> Iterator[tuple]:
    """Worker tasks from the shards, read one after the other: batches bounded in count and bytes."""
    target = scan.target
    batch: list[tuple] = []
    size = 0
    for shard in scan.to_read():
        if scan.full:
            scan.unread[shard] = "not read: " + scan.full
            continue
        m = scan.name_re.fullmatch(shard)
        reader = (ParquetReader if target.format == "parquet" else WebDatasetReader)(target.folder / shard)
        rows = reader.rows()
        try:
            for row in rows:
                item = scan.add(row, shard, m["split"] if m else None)
                del row
                if scan.full:
                    break
                if item is not None:
                    batch.append(checking.item(*item))
                    size += len(item[1])
                if len(batch) >= BATCH_IMAGES or size >= BATCH_BYTES:
                    yield batch, checking.spec
                    batch, size = [], 0
        except OSError as exc:  # opening it (a file swapped for a FIFO since the folder was listed)
            scan.unread[shard] = f"cannot read: {why(exc)}"
            continue
        finally:
            rows.close()
        scan.finish(shard, reader)
    if batch:
        yield batch, checking.spec


def check_shards(target: ShardTarget, opts: VerifyOptions) -> Report:
    """Every level of a folder of shards or of one shard (`shardtarget.shard_target`)."""
    published = published_member_lists(target.manifest, target.stem)
    checking = Checking.of(target, opts)
    scan = ShardScan(target, opts.strict)
    images = (target.report or {}).get("images")  # the bar's total: the rows of the folder
    total = None if target.only else images if type(images) is int else checking.expected_images()
    with Progress(opts.quiet).bar("verify", total=total, unit="img") as bar:
        checking.run(_tasks(scan, checking), opts.jobs, bar, lambda r: r.member.partition("/")[2])
    partial = target.only is not None or bool(scan.no_member)
    members = members_level(scan, target, published, partial)
    if scan.no_member:
        unnamed = (f"{len(scan.no_member)} of {scan.rows} samples do not say their member (no 'member' in their "
                   "JSON): their images are not compared with a member list, the manifest's list or their source")
        members.notes.append(unnamed)
        if not scan.digests:
            members.summary = "no sample says its member: none compared"
    if scan.provenance:
        members.problems.append(counted("rows whose provenance is not their own image's", scan.provenance))
        members.passed = False
    if scan.no_provenance:
        members.notes.append(f"{scan.no_provenance} of {scan.rows} rows have no provenance (shards of an earlier "
                             "version): not checked")
    checked = len(scan.digests) - scan.no_provenance
    members.data["provenance"] = {"checked": checked, "wrong": len(scan.provenance)}
    if checked:
        members.summary += f"; {checked - len(scan.provenance)} of {checked} rows' provenance their own"
    if target.only is not None:
        members.notes.append("one shard: the members of the list in other shards are not looked for")
    levels = [identity_level(target, scan), structure_level(scan), members]
    levels += checking.levels(scan.complete and not scan.full)
    if scan.no_member and checking.sources is not None:
        levels[-1].notes.append(unnamed)
    return Report(target, levels)
