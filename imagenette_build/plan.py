"""The plan: which source image becomes which archive member, decided before any pixel is touched.

Member order is part of the output's bytes, so it is defined here once: root files first (in the
manifest's order), then images sorted by member path (`train/...` before `val/...`; within a split,
by class, then file name). Nothing about a plan depends on --jobs, the layout or the file system's
listing order.

A plan is held column by column (`PlanImages`), not as one Python object per image: ~60 bytes an
image instead of ~400, so that a plan of all of ImageNet-1k (1.33 M images) holds ~80 MB, and
planning it peaks at ~180 MB of RSS, not ~880 MB. Planning goes one class at a time, as the source
yields the images; only the random split policy holds a class at once (to sort it).
"""

from __future__ import annotations

import bisect
import hashlib
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from .filelist import ListedImage
from .manifest import Manifest
from .progress import Progress
from .sources import Source, SourceImage, SourceRef


@dataclass(frozen=True)
class PlannedImage:
    member: str  # path below the archive's top folder: "train/n01440764/n01440764_10026.JPEG"
    split: str
    wnid: str
    ref: SourceRef


# One row per image. A member is prefixes[prefix] + base; a source path is dirs[dir] + tail, where
# tail_start == _AS_BASE means "the same as base" (a class folder's file keeps its name in the
# archive). base and tail are byte ranges of one shared blob (UTF-8, surrogateescape for odd names).
_ROW = np.dtype([("prefix", "<u4"), ("label", "<u4"), ("base_start", "<u4"), ("base_len", "<u2"),
                 ("dir", "<u4"), ("tail_start", "<u4"), ("tail_len", "<u2"), ("offset", "<i8"),
                 ("length", "<i8")])  # 40 bytes
_AS_BASE = 0xFFFF_FFFF
_CHUNK = 4096  # rows turned into objects at a time when iterating


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _checked_names(images: Iterable[SourceImage]) -> Iterator[SourceImage]:
    """The source's images, each file name UTF-8, without control characters, and one name in
    normal form (`safepath`): it becomes a tar member's name, which `extract` must accept, and a row
    of the generated noisy_<name>.csv, where a line break would make a second row (and a terminal
    would act on an escape). No ImageNet image has such a name: it is refused, not mangled. (A
    `files` manifest's names come from its list, which allows none.)"""
    for img in images:
        name = img.filename
        if not name.isascii() or _CONTROL.search(name) or "\\" in name or "/" in name or name in (".", ".."):
            _check_name(name, img.ref)
        yield img


def _check_name(name: str, ref: SourceRef) -> None:
    from .errors import DataError
    from .safepath import UnsafeName, member_parts

    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        problem = "is not UTF-8"
    else:
        if _CONTROL.search(name):
            problem = "holds a control character (a line break, tab, escape...)"
        else:
            try:
                if len(member_parts(name)) == 1:
                    return
                problem = "is not one file name"
            except UnsafeName as exc:
                problem = f"is not a name an archive may hold ({exc})"
    raise DataError(f"{str(ref)!r}: the file name {_encode(name)!r} {problem}; rename or remove the file "
                    "(it would name an archive member and a row of the noisy-labels CSV)")


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


@dataclass(frozen=True)
class _Tables:
    """What the rows index into; shared, never changed, by a plan's images and their subsets."""

    prefixes: list[str]  # "train/n01440764/", "unlabelled/"
    labels: list[tuple[str, str]]  # (split, wnid)
    dirs: list[str]  # "/data/imagenet/train/n01440764/"
    blob: bytes | bytearray

    def name(self, start: int, length: int) -> str:
        return _decode(self.blob[start:start + length])

    def member(self, prefix: int, base_start: int, base_len: int) -> str:
        return self.prefixes[prefix] + self.name(base_start, base_len)


class PlanImages(Sequence[PlannedImage]):
    """The planned images, in member order: a sequence of `PlannedImage`, made on access."""

    def __init__(self, tables: _Tables, rows: np.ndarray):
        self._t = tables
        self._rows = rows

    @classmethod
    def from_images(cls, images: Iterable[PlannedImage]) -> PlanImages:
        """Images in any order; the result is in member order. DataError for a member named twice."""
        builder = _Builder()
        builder.add(images)
        return builder.finish()

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return PlanImages(self._t, self._rows[index])
        return self._make(self._rows[index].tolist())

    def __iter__(self) -> Iterator[PlannedImage]:
        for start in range(0, len(self._rows), _CHUNK):
            yield from map(self._make, self._rows[start:start + _CHUNK].tolist())

    def _make(self, row: tuple) -> PlannedImage:
        prefix, label, base_start, base_len, dir_, tail_start, tail_len, offset, length = row
        t = self._t
        base = t.name(base_start, base_len)
        tail = base if tail_start == _AS_BASE else t.name(tail_start, tail_len)
        split, wnid = t.labels[label]
        return PlannedImage(t.prefixes[prefix] + base, split, wnid, SourceRef(t.dirs[dir_] + tail, offset, length))

    def members(self, split: str | None = None) -> Iterator[str]:
        """The member names (of one split), in order, without making whole `PlannedImage`s."""
        t = self._t
        labels = [i for i, (s, _) in enumerate(t.labels) if split is None or s == split]
        for start in range(0, len(self._rows), _CHUNK):
            rows = self._rows[start:start + _CHUNK]
            if split is not None:
                rows = rows[np.isin(rows["label"], labels)]
            for fields in rows[["prefix", "base_start", "base_len"]].tolist():
                yield t.member(*fields)

    def find(self, member: str) -> PlannedImage | None:
        """The image that becomes `member`, or None: a binary search, as the rows are in member order."""
        names = _MemberAt(self)
        i = bisect.bisect_left(names, member)
        return self[i] if i < len(self) and names[i] == member else None

    def without(self, members: set[str]) -> PlanImages:
        """These images less the ones whose member is in `members`, still in member order."""
        keep = np.fromiter((m not in members for m in self.members()), dtype=bool, count=len(self))
        return PlanImages(self._t, self._rows[keep])

    def counts(self) -> Counter:
        """{(split, wnid): images}."""
        n = np.bincount(self._rows["label"], minlength=len(self._t.labels))
        return Counter({label: int(k) for label, k in zip(self._t.labels, n.tolist()) if k})

    def nbytes(self) -> int:
        """What the plan holds: rows and names (the tables' lists are a few kB)."""
        return self._rows.nbytes + len(self._t.blob)


class _MemberAt(Sequence[str]):
    """The member names of a `PlanImages` by position, for `bisect`."""

    def __init__(self, images: PlanImages):
        self._t, self._rows = images._t, images._rows

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, i):
        return self._t.member(*self._rows[i][["prefix", "base_start", "base_len"]].tolist())


class _Builder:
    """Collects planned images, one class at a time, into rows; `finish` sorts them."""

    def __init__(self) -> None:
        self._index: dict[str, dict] = {"prefix": {}, "label": {}, "dir": {}}  # value -> id, per column
        self._blob = bytearray()
        self._chunks: list[np.ndarray] = []

    def add(self, images: Iterable[PlannedImage]) -> None:
        blob, prefixes, labels, dirs = self._blob, *self._index.values()
        rows = []
        for img in images:  # (names are at most 255 bytes on every file system; u2 holds 65,535)
            head, slash, base = img.member.rpartition("/")
            d, slash2, tail = img.ref.path.rpartition("/")
            p = prefixes.setdefault(head + slash, len(prefixes))
            lab = labels.setdefault((img.split, img.wnid), len(labels))
            dir_ = dirs.setdefault(d + slash2, len(dirs))
            data = _encode(base)
            base_start = len(blob)
            blob += data
            tail_start, tail_len = _AS_BASE, 0
            if tail != base:
                extra = _encode(tail)
                tail_start, tail_len = len(blob), len(extra)
                blob += extra
            rows.append((p, lab, base_start, len(data), dir_, tail_start, tail_len, img.ref.offset, img.ref.length))
            if len(rows) == _CHUNK:
                self._flush(rows)
                rows = []
        if rows:
            self._flush(rows)

    def _flush(self, rows: list[tuple]) -> None:
        if len(self._blob) >= _AS_BASE:  # before numpy would wrap a start around (100 M+ images)
            from .errors import DataError

            raise DataError(f"the plan's file names take more than {_AS_BASE:,} bytes: too many images for one plan")
        self._chunks.append(np.array(rows, dtype=_ROW))

    def finish(self) -> PlanImages:
        # The blob is handed over, not copied; nothing appends to it once the builder is done.
        tables = _Tables(*(list(self._index[k]) for k in ("prefix", "label", "dir")), self._blob)
        chunks, self._chunks = self._chunks[::-1], []
        rows = np.empty(sum(map(len, chunks)), _ROW)  # its pages are taken as the chunks are let go
        at = 0
        while chunks:
            chunk = chunks.pop()
            rows[at:at + len(chunk)] = chunk
            at += len(chunk)
        _sort(tables, rows)
        return PlanImages(tables, rows)


def _sort(t: _Tables, rows: np.ndarray) -> None:
    """Put `rows` in member order, in place: by prefix and then, within a prefix, by base name,
    which is member order unless one prefix begins another (checked at the seams; then sorted by
    whole members). DataError when two images would become the same member."""
    by_name = sorted(range(len(t.prefixes)), key=t.prefixes.__getitem__)
    rank = np.empty(len(t.prefixes), np.int64)
    rank[by_name] = np.arange(len(by_name))
    ranks = rank[rows["prefix"]]
    perm = np.argsort(ranks, kind="stable")
    ends = np.cumsum(np.bincount(ranks, minlength=len(by_name))).tolist()
    del ranks
    start = 0
    for end in ends:
        if end - start > 1:
            part = rows[perm[start:end]]
            bases = [t.name(*fields) for fields in part[["base_start", "base_len"]].tolist()]
            perm[start:end] = perm[start:end][_order(bases, PlanImages(t, part))]
        start = end
    _permute(rows, perm)
    del perm
    images = PlanImages(t, rows)
    if any(images[i - 1].member >= images[i].member for i in ends[:-1] if 0 < i < len(rows)):
        _permute(rows, np.array(_order(list(images.members()), images), dtype=np.int64))


def _permute(rows: np.ndarray, perm: np.ndarray) -> None:
    """rows[:] = rows[perm], a column at a time: one column's copy at once, not the whole table's."""
    for name in rows.dtype.names:
        rows[name] = rows[name][perm]


def _order(keys: list[str], images: PlanImages) -> list[int]:
    """The order that sorts `keys` (one per image); DataError if two are equal."""
    from .errors import DataError

    order = sorted(range(len(keys)), key=keys.__getitem__)
    for a, b in zip(order, order[1:]):
        if keys[a] == keys[b]:
            first, second = images[a], images[b]
            raise DataError(f"two source images would become {first.member}: {first.ref} and {second.ref}")
    return order


@dataclass
class Plan:
    manifest: Manifest
    found_in: str  # the ImageNet copy the images were found in, described ("folders at /data/imagenet")
    images: PlanImages
    missing: list[str] = field(default_factory=list)  # members with no source image
    empty_classes: list[str] = field(default_factory=list)  # where nothing at all was found, and where

    def counts(self) -> dict[str, dict[str, int]]:
        """{split: {wnid: images}} over the images found, every manifest split and class present."""
        c = self.images.counts()
        return {s: {w: c[(s, w)] for w in self.manifest.wnids} for s in self.manifest.split.splits}

    def to_json(self) -> dict:
        return {
            "manifest": self.manifest.name,
            "source": self.found_in,
            "images": len(self.images),
            "counts": self.counts(),
            "missing": len(self.missing),
            "missing_first": self.missing[:10],
            "empty_classes": self.empty_classes,
        }


def random_split_key(seed: int, wnid: str, filename: str) -> str:
    """The documented `random` split order: per class, images sorted by this key."""
    return hashlib.sha256(f"{seed}\0{wnid}\0{filename}".encode()).hexdigest()


def random_val_count(n: int, fraction: float) -> int:
    return math.floor(n * fraction + 0.5)


def extra_split_key(seed: int, split: str, wnid: str, filename: str) -> str:
    """The documented order for [[split.extra]]: per class, train images sorted by this key."""
    return hashlib.sha256(f"{seed}\0{split}\0{wnid}\0{filename}".encode()).hexdigest()


def _apply_extra_splits(planned: list[PlannedImage], wnid: str, manifest: Manifest) -> list[PlannedImage]:
    """Move a seeded share of one class's train images to each flat, unlabelled extra split that
    takes from this class."""
    seed = manifest.split.seed
    for extra in manifest.split.extra:
        if extra.classes and wnid not in extra.classes:
            continue
        imgs = [p for p in planned if p.split == extra.source]
        ordered = sorted(imgs, key=lambda p: extra_split_key(seed, extra.name, wnid, p.member.rsplit("/", 1)[1]))
        moved: dict[str, PlannedImage] = {}
        for p in ordered[:random_val_count(len(ordered), extra.fraction)]:
            filename = p.member.rsplit("/", 1)[1]
            moved[p.member] = PlannedImage(f"{extra.name}/{filename}", extra.name, wnid, p.ref)
        planned = [moved.get(p.member, p) for p in planned]
    return planned


def _plan_class(manifest: Manifest, wnid: str, imgs: Iterator[SourceImage],
                listed: list[ListedImage], missing: list[str]) -> Iterator[PlannedImage]:
    """One class's images, under the manifest's split policy, as the source yields them (only the
    random policy holds a class at once, to sort it)."""
    policy = manifest.split.policy
    if policy == "files":
        wanted = {item.filename for item in listed}
        found = {img.filename: img.ref for img in imgs if img.filename in wanted}  # the last of a name
        for item in listed:
            ref = found.get(item.filename)
            if ref is None:
                missing.append(item.member)
            else:
                yield PlannedImage(item.member, item.split, wnid, ref)
    elif policy == "imagenet":
        for img in imgs:
            yield PlannedImage(f"{img.split}/{wnid}/{img.filename}", img.split, wnid, img.ref)
    else:  # random: pool ILSVRC train and val, then a seeded, stratified split per class
        seed, fraction = manifest.split.seed, manifest.split.val_fraction
        ordered = sorted(imgs, key=lambda im: random_split_key(seed, wnid, im.filename))
        n_val = random_val_count(len(ordered), fraction)
        for i, img in enumerate(ordered):
            split = "val" if i < n_val else "train"
            yield PlannedImage(f"{split}/{wnid}/{img.filename}", split, wnid, img.ref)


class _Counting:
    """An iterator that counts what passes through it."""

    def __init__(self, items: Iterable):
        self._items = iter(items)
        self.count = 0

    def __iter__(self) -> _Counting:
        return self

    def __next__(self):
        item = next(self._items)
        self.count += 1
        return item


def make_plan(manifest: Manifest, source: Source, progress: Progress | None = None) -> Plan:
    progress = progress or Progress(quiet=True)
    empty: list[str] = []
    missing: list[str] = []
    file_list = manifest.listed_images() if manifest.split.policy == "files" else []
    listed: dict[str, list[ListedImage]] = {}  # (the list's reader refuses a class not in the manifest)
    for item in file_list:
        listed.setdefault(item.wnid, []).append(item)
    source.select(manifest.wnids, progress)  # one-pass layouts (compressed shards) read here
    builder = _Builder()
    for wnid in progress.bar("scan", iterable=manifest.wnids, unit="class"):
        imgs = source.images(wnid)
        seen = _Counting(imgs if manifest.split.policy == "files" else _checked_names(imgs))
        planned = _plan_class(manifest, wnid, seen, listed.get(wnid, []), missing)
        if manifest.split.extra:
            planned = _apply_extra_splits(list(planned), wnid, manifest)
        builder.add(planned)
        if not seen.count:
            empty.append(f"{wnid}: nothing in {source.looked_in(wnid)}")
    if missing:  # in the list's own order, not class by class
        gone = set(missing)
        missing = [item.member for item in file_list if item.member in gone]
    return Plan(manifest, source.describe(), builder.finish(), missing, empty)
