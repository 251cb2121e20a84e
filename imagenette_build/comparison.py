"""`compare`: do two archives hold the same images? Member by member, whatever their tar headers,
member order and gzip stream (the published archives and a rebuild never share a hash).

Each side is an archive (read as one bounded stream by `archive_reader`, with verify's rules: names
through `safepath`, links and devices refused unread), an extracted folder (the dataset's top
folder, walked without following links, regular files only, each at most a member's bound), or a
member list in `sha256sum` format (`<stem>.members.sha256`, or a published list shipped in
`manifests/`). Members are named below their top folder, so `imagenette2-160/train/x.JPEG` and the
extracted `train/x.JPEG` are one member.

Memory: the first side's names and sha256s (the reader bounds them), then the second side is
streamed against them; each list of differences keeps its count and first few names.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import members as member_lists
from .archive_reader import ArchiveStream
from .declare import PATH, option
from .errors import UserError, cannot, why
from .limits import MAX_MEMBER_BYTES, MAX_MEMBERS
from .progress import Progress
from .readfile import kind_of, sha256_of
from .safepath import printable
from .verifier.report import FirstFew, first_few
from .verifier.structure import is_junk

SHOWN_IN_JSON = 1000  # names per list in --json (each list also has its count)


@dataclass
class Found:
    """One member as a side holds it: its path below the top folder and its sha256 (None: not
    readable as a member, `problem` says why)."""

    rel: str
    sha256: bytes | None
    problem: str | None = None


@dataclass
class SideSummary:
    path: str
    kind: str  # archive, folder, member list
    tops: list[str] = field(default_factory=list)
    images: int = 0
    root_files: int = 0
    junk: int = 0
    problems: FirstFew = field(default_factory=FirstFew)

    def to_json(self) -> dict:
        return {"path": self.path, "kind": self.kind, "top_folders": self.tops, "images": self.images,
                "root_files": self.root_files, "junk": self.junk,
                "problems": self.problems.count, "problems_first": self.problems.first}


class _Names:
    """A bounded list of names: its count, and the first SHOWN_IN_JSON of them."""

    def __init__(self) -> None:
        self.count = 0
        self.names: list[str] = []

    def add(self, name: str) -> None:
        self.count += 1
        if len(self.names) < SHOWN_IN_JSON:
            self.names.append(name)


@dataclass
class Comparison:
    a: SideSummary
    b: SideSummary
    identical: int = 0
    differ: _Names = field(default_factory=_Names)
    only_a: _Names = field(default_factory=_Names)
    only_b: _Names = field(default_factory=_Names)
    root_identical: int = 0
    root_differ: _Names = field(default_factory=_Names)

    @property
    def same_images(self) -> bool:
        """Every image member identical, none in one side only, both sides read whole."""
        return (not self.differ.count and not self.only_a.count and not self.only_b.count and self.identical > 0
                and not self.a.problems.count and not self.b.problems.count)

    def to_json(self) -> dict:
        lists = {"differ": self.differ, "only_in_a": self.only_a, "only_in_b": self.only_b,
                 "root_files_differ": self.root_differ}
        out = {"a": self.a.to_json(), "b": self.b.to_json(), "same_images": self.same_images,
               "identical": self.identical, "root_files_identical": self.root_identical}
        for key, names in lists.items():
            out[key] = names.count
            out[f"{key}_first"] = names.names
        return out

    def lines(self) -> list[str]:
        total = self.identical + self.differ.count
        out = [f"A: {self.a.path} ({self.a.kind}: {self.a.images:,} images{_tops(self.a)})",
               f"B: {self.b.path} ({self.b.kind}: {self.b.images:,} images{_tops(self.b)})",
               f"identical: {self.identical:,} of the {total:,} images in both"]
        for label, names in (("differ", self.differ), ("only in A", self.only_a), ("only in B", self.only_b),
                             ("root files that differ", self.root_differ)):
            if names.count:
                out.append(f"{label}: {names.count:,}: {first_few(names.names)}"
                           + (f" ... ({names.count - len(names.names[:5])} more)" if names.count > 5 else ""))
        for side, name in ((self.a, "A"), (self.b, "B")):
            if side.problems.count:
                out.append(f"{name} could not be read whole: {side.problems.count:,} problems: "
                           f"{first_few(side.problems)}")
        out.append("SAME IMAGES" if self.same_images else "DIFFERENT")
        return [printable(line) for line in out]


def _tops(side: SideSummary) -> str:
    return f" in {', '.join(t + '/' for t in side.tops)}" if side.tops else ""


# ------------------------------------------------------------------------------------ the sides


def _archive(stream: ArchiveStream, summary: SideSummary, progress: Progress) -> Iterator[Found]:
    tops: Counter[str] = Counter()
    path = stream.path
    size = os.stat(path).st_size
    with stream, progress.bar(f"read {path.name}", total=size, unit_bytes=True) as bar:
        read = 0
        for entry in stream.entries():
            if stream.bytes_read != read:
                bar.update(stream.bytes_read - read)
                read = stream.bytes_read
            if entry.unsafe:
                summary.problems.append(f"member {entry.name}: {entry.unsafe}")
                continue
            if entry.kind != "file" or not entry.parts:
                continue
            top, rel = entry.parts[0], "/".join(entry.parts[1:])
            tops[top] += 1
            if not rel:
                summary.problems.append(f"member {entry.name}: a file where the top folder should be")
                continue
            if entry.data is None:
                yield Found(rel, None, f"{entry.size:,} bytes, more than a member may have ({MAX_MEMBER_BYTES:,})")
                continue
            yield Found(rel, hashlib.sha256(entry.data).digest())
        bar.update(stream.bytes_read - read)
    if stream.io_error:
        raise UserError(stream.io_error)
    if stream.problem:
        summary.problems.append(stream.problem)
    summary.tops = sorted(tops)
    if len(tops) > 1:
        summary.problems.append(f"{len(tops)} top folders ({', '.join(sorted(tops)[:5])}): members compared below each")


def _folder(root: Path, summary: SideSummary, progress: Progress) -> Iterator[Found]:
    """Every regular file below `root`, in name order, never through a link."""
    count = 0
    with progress.bar(f"read {root.name}/", unit="file") as bar:
        stack = [(root, "")]
        while stack:
            folder, prefix = stack.pop()
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name, reverse=True)
            except OSError as exc:
                summary.problems.append(f"{folder}: cannot list: {why(exc)}")
                continue
            for entry in entries:
                rel = prefix + entry.name
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    stack.append((Path(entry.path), rel + "/"))
                    continue
                count += 1
                if count > MAX_MEMBERS:
                    summary.problems.append(f"more than {MAX_MEMBERS:,} files; the rest was not read")
                    return
                if not stat.S_ISREG(st.st_mode):
                    what = "a symbolic link" if stat.S_ISLNK(st.st_mode) else kind_of(st.st_mode)
                    yield Found(rel, None, f"{what}, not a regular file")
                    continue
                try:
                    digest = sha256_of(entry.path, MAX_MEMBER_BYTES, "a member", follow_symlinks=False)
                except OSError as exc:
                    yield Found(rel, None, exc.strerror or str(exc))
                    continue
                bar.update(1)
                yield Found(rel, bytes.fromhex(digest))
    summary.tops = [root.name]


def _member_list(path: Path, summary: SideSummary, progress: Progress) -> Iterator[Found]:
    listing, _ = member_lists.read(path)
    for rel, digest in listing.items():
        yield Found(rel, bytes.fromhex(digest))


def _side(path: Path, progress: Progress) -> tuple[SideSummary, Iterator[Found]]:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file or folder") from None
    except OSError as exc:
        raise cannot(path, "read", exc, UserError) from None
    if stat.S_ISDIR(st.st_mode):
        summary = SideSummary(str(path), "folder")
        return summary, _folder(path, summary, progress)
    if path.name.endswith(".sha256"):
        summary = SideSummary(str(path), "member list")
        return summary, _member_list(path, summary, progress)
    summary = SideSummary(str(path), "archive")
    return summary, _archive(ArchiveStream(path), summary, progress)  # (opened now: a bad path is said first)


# ------------------------------------------------------------------------------------ comparing


def _kind(rel: str, summary: SideSummary) -> str:
    """image, root (a file at the top folder's root, like the noisy-labels CSV) or junk."""
    if is_junk(rel):
        summary.junk += 1
        return "junk"
    if "/" not in rel:
        summary.root_files += 1
        return "root"
    summary.images += 1
    return "image"


@dataclass(frozen=True)
class CompareOptions:
    """`compare`'s options, declared once (`declare`)."""

    a: Path = option(type=PATH, argument=True, help="An archive, an extracted folder or a member list.")
    b: Path = option(type=PATH, argument=True, help="Another.")


def compare(opts: CompareOptions, progress: Progress | None = None) -> Comparison:
    """Compare two archives, folders or member lists, image member by image member."""
    a, b = opts.a, opts.b
    progress = progress or Progress(quiet=True)
    side_a, found_a = _side(a, progress)
    side_b, found_b = _side(b, progress)
    held: dict[str, tuple[str, bytes | None]] = {}  # A's members: rel -> (kind, sha256)
    for f in found_a:
        kind = _kind(f.rel, side_a)
        if f.problem:
            side_a.problems.append(f"{f.rel}: {f.problem}")
        if f.rel in held:
            side_a.problems.append(f"{f.rel}: stored twice")
        elif kind != "junk":
            held[f.rel] = (kind, f.sha256)
    result = Comparison(side_a, side_b)
    seen_b_only: set[str] = set()
    for f in found_b:
        kind = _kind(f.rel, side_b)
        if f.problem:
            side_b.problems.append(f"{f.rel}: {f.problem}")
        if kind == "junk":
            continue
        mine = held.get(f.rel, False)
        if mine is None or f.rel in seen_b_only:  # (None: already matched)
            side_b.problems.append(f"{f.rel}: stored twice")
            continue
        if mine is False:
            seen_b_only.add(f.rel)
            (result.only_b if kind == "image" else result.root_differ).add(f.rel)
            continue
        held[f.rel] = None
        same = mine[1] is not None and mine[1] == f.sha256
        if mine[0] == "image":
            if same:
                result.identical += 1
            else:
                result.differ.add(f.rel)
        elif same:
            result.root_identical += 1
        else:
            result.root_differ.add(f.rel)
    for rel, left in sorted((r, v) for r, v in held.items() if v is not None):
        (result.only_a if left[0] == "image" else result.root_differ).add(rel)
    return result
