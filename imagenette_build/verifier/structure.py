"""Level 2, structure: what the stream held, member by member (`StructureScan`, fed as the archive
is read), against what the archive should hold: one top folder named after it, no unsafe, junk or
oversized members, the manifest's member list exactly (or, without a list, its splits and
classes), its root files, and a generated noisy-labels CSV row by row."""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter
from dataclasses import dataclass, field

from ..archive_reader import Entry, stem_of_archive_name
from ..manifest import Manifest
from ..noisy import HEADER as NOISY_HEADER
from ..safepath import UnsafeName, ordinary_name
from .report import FIRST_FEW, FirstFew, LevelResult, counted, counted_below, first_few

JUNK_NAMES = (".DS_Store", "Thumbs.db")
JUNK_PREFIXES = ("._",)
JUNK_FOLDERS = ("__MACOSX",)


def is_junk(relpath: str) -> bool:
    parts = relpath.split("/")
    name = parts[-1]
    return name in JUNK_NAMES or name.startswith(JUNK_PREFIXES) or any(p in JUNK_FOLDERS for p in parts)


class StructureScan:
    """What the stream held, member by member; `add` says which members are images to check."""

    def __init__(self, top: str, keep: tuple[str, ...] = ()):
        self.top = top
        self.keep = keep  # root files whose bytes are kept (a generated noisy-labels CSV, checked row by row)
        self.kept: dict[str, bytes] = {}
        self.tops: Counter[str] = Counter()
        # Held for every member (names bounded by limits.MAX_NAMES_BYTES, counted by the stream)
        self.seen: set[str] = set()
        self.root_files: dict[str, str] = {}  # relpath -> sha256
        self.digests: dict[str, str] = {}  # every file member below the top folder: relpath -> sha256
        self.images: list[str] = []  # relpaths below the top folder
        self.duplicates = FirstFew()
        self.unsafe = FirstFew()
        self.junk = FirstFew()
        self.too_large = FirstFew()
        self.members = 0

    def add(self, entry: Entry) -> str | None:
        """Record a member; its path below the top folder when it is an image to decode."""
        self.members += 1
        if entry.unsafe:
            self.unsafe.append(f"{entry.name} ({entry.unsafe})")
            return None
        if not entry.parts:  # `./`, the archive's root, as `tar -C dir .` writes it
            return None
        path = entry.path
        if path in self.seen:  # (`./a` and `a` are one member)
            self.duplicates.append(entry.name)
            return None
        self.seen.add(path)
        first, _, rel = path.partition("/")
        self.tops[first] += 1
        if entry.kind != "file" or not rel:
            return None
        if not entry.too_large:
            self.digests[rel] = hashlib.sha256(entry.data).hexdigest()
        if is_junk(rel):
            self.junk.append(entry.name)
            return None
        if entry.too_large:
            self.too_large.append(f"{entry.name} ({entry.size:,} bytes)")
            return None
        if "/" not in rel:
            self.root_files[rel] = self.digests[rel]
            if rel in self.keep:
                self.kept[rel] = entry.data
            return None
        self.images.append(rel)
        return rel

    def named(self, rel: str) -> str:
        """A member in messages: its name in the archive."""
        return f"{self.top}/{rel}"

    def counts(self) -> dict[str, dict[str, int]]:
        """{split: {class: images}}; flat splits (unsup/) count under class ''."""
        c: Counter[tuple[str, str]] = Counter()
        for rel in self.images:
            parts = rel.split("/")
            c[(parts[0], parts[1] if len(parts) == 3 else "")] += 1
        out: dict[str, dict[str, int]] = {}
        for (split, wnid), n in sorted(c.items()):
            out.setdefault(split, {})[wnid] = n
        return out


@dataclass
class MemberDiff:
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    misplaced: list[str] = field(default_factory=list)  # "<where it is> (listed as <where it belongs>)"


def diff_against_list(images: list[str], manifest: Manifest) -> MemberDiff:
    """Members against a `files` manifest. A file name listed elsewhere is misplaced (wrong split
    or class), not one missing plus one extra."""
    listed = {li.member: li for li in manifest.listed_images()}
    where_listed = {li.filename: member for member, li in listed.items()}
    present = set(images)
    missing = {m for m in listed if m not in present}
    diff = MemberDiff()
    for rel in sorted(present - set(listed)):
        belongs = where_listed.get(rel.rsplit("/", 1)[-1])
        if belongs is None:
            diff.extra.append(rel)
        else:
            diff.misplaced.append(f"{rel} (listed as {belongs})")
            missing.discard(belongs)
    diff.missing = sorted(missing)
    return diff


def outside_policy(images: list[str], manifest: Manifest) -> list[str]:
    """Manifests without a file list: members outside its splits or classes."""
    flat = {e.name for e in manifest.split.extra}
    wnids = set(manifest.wnids)
    bad = []
    for rel in images:
        parts = rel.split("/")
        if parts[0] in flat:
            ok = len(parts) == 2
        else:
            ok = parts[0] in manifest.split.splits and len(parts) == 3 and parts[1] in wnids
        if not ok:
            bad.append(rel)
    return bad


def expected_root_files(manifest: Manifest) -> list[str]:
    return list(manifest.root_files) + ([manifest.noisy_labels_file] if manifest.noisy_labels_file else [])


def _earlier_layout(scan: StructureScan, manifest: Manifest) -> str | None:
    """The published uploads of this archive's name whose root files were exactly those found
    (the 2019-12 uploads had none), as "uploaded <date>, <date>"; None when no such upload."""
    found = sorted(scan.root_files)
    dates = [p.uploaded for p in manifest.published
             if p.root_files is not None and stem_of_archive_name(p.archive) == scan.top and sorted(p.root_files) == found]
    return f"uploaded {', '.join(dates)}" if dates else None


def _root_file_problems(scan: StructureScan, manifest: Manifest, notes: list[str]) -> list[str]:
    expected = expected_root_files(manifest)
    if sorted(scan.root_files) != sorted(expected):
        earlier = _earlier_layout(scan, manifest)
        if earlier:
            shown = ", ".join(sorted(scan.root_files)) or "none"
            notes.append(f"root files ({shown}) as in the published {scan.top}.tgz {earlier}")
            return []
    problems = _noisy_csv_problems(scan, manifest)
    for name in expected:
        digest = scan.root_files.get(name)
        if digest is None:
            problems.append(f"root file {scan.top}/{name} is missing")
        elif name in manifest.root_files and digest != manifest.file_hashes.get(name, digest):
            problems.append(f"root file {scan.top}/{name} differs from the manifest's {manifest.base_dir / name}")
    unexpected = [f"{scan.top}/{n}" for n in sorted(scan.root_files) if n not in expected]
    if unexpected:
        problems.append(counted("unexpected root files", unexpected))
    return problems


def _noisy_csv_problems(scan: StructureScan, manifest: Manifest) -> list[str]:
    """A generated noisy_<name>.csv must hold exactly one well-formed row per labelled image of the
    archive: a row too many (a name with a line break, written unquoted by an old version) or too
    few is a structure failure."""
    name = manifest.noisy_labels_file
    data = scan.kept.get(name) if name else None
    if data is None:
        return []
    where = f"root file {scan.top}/{name}"
    try:
        rows = csv.reader(io.StringIO(data.decode("utf-8"), newline=""))
        header = next(rows, None)
    except (UnicodeDecodeError, csv.Error) as exc:
        return [f"{where}: not a readable CSV ({exc})"]
    if header != NOISY_HEADER:
        return [f"{where}: the header is not {','.join(NOISY_HEADER)}"]
    extra = {e.name for e in manifest.split.extra}
    labelled = {rel for rel in scan.images if rel.split("/")[0] not in extra}
    wnids = set(manifest.wnids)
    seen: set[str] = set()
    bad = FirstFew()
    try:
        for lineno, row in enumerate(rows, start=2):
            if len(row) != len(NOISY_HEADER) or row[0] not in labelled or row[0] in seen:
                why = ("not " + str(len(NOISY_HEADER)) + " columns" if len(row) != len(NOISY_HEADER) else
                       "listed twice" if row[0] in seen else "not an image of the archive")
                bad.append(f"line {lineno} ({why})")
                continue
            seen.add(row[0])
            split = row[0].split("/")[0]
            if not set(row[1:-1]) <= wnids or row[-1] != ("True" if split == "val" else "False"):
                bad.append(f"line {lineno} (labels or is_valid do not fit {row[0]})")
    except csv.Error as exc:
        bad.append(f"not a readable CSV ({exc})")
    problems = [f"{where}: " + counted("bad rows", bad)] if bad else []
    missing = len(labelled - seen)
    if missing:
        problems.append(f"{where}: no row for {missing} images of the archive, first: "
                        f"{first_few(sorted(labelled - seen))}")
    return problems


def _manifest_problems(scan: StructureScan, manifest: Manifest, data: dict) -> list[str]:
    top = scan.top
    if manifest.split.policy == "files":
        diff = diff_against_list(scan.images, manifest)
        data.update(missing=len(diff.missing), extra=len(diff.extra), misplaced=len(diff.misplaced),
                    missing_first=diff.missing[:FIRST_FEW], extra_first=diff.extra[:FIRST_FEW],
                    misplaced_first=diff.misplaced[:FIRST_FEW])
        return counted_below(top, (("missing", diff.missing), ("extra (not in the manifest)", diff.extra),
                                   ("in the wrong split or class", diff.misplaced)))
    bad = outside_policy(scan.images, manifest)
    data.update(outside_manifest=len(bad), outside_manifest_first=bad[:FIRST_FEW])
    return [counted("members outside the manifest's splits and classes", [f"{top}/{b}" for b in bad])] if bad else []


def structure_level(scan: StructureScan, manifest: Manifest | None, stream_problem: str | None,
                    strict: bool) -> LevelResult:
    problems, notes = [], []
    counts = scan.counts()
    data: dict = {"members": scan.members, "images": len(scan.images), "counts": counts,
                  "top_folders": sorted(scan.tops), "root_files": sorted(scan.root_files),
                  "unsafe": scan.unsafe.first, "junk": scan.junk.first, "stream_problem": stream_problem}
    if stream_problem:
        problems.append(f"archive stream: {stream_problem}")
    if scan.unsafe:
        problems.append(counted("unsafe members (never extract this archive)", scan.unsafe))
    try:
        ordinary_name(scan.top)
    except UnsafeName as exc:
        problems.append(f"the archive's name gives the top folder {scan.top!r}, not one ordinary name ({exc}): "
                        "rename the file")
    others = sorted(t for t in scan.tops if t != scan.top)
    if others:
        problems.append(f"expected one top folder {scan.top}/, also found: {first_few(o + '/' for o in others)}")
    elif not scan.members and not stream_problem:
        problems.append("the archive holds no members")
    if scan.duplicates:
        problems.append(counted("members stored twice", scan.duplicates))
    if scan.too_large:
        problems.append(counted("members too large to be images", scan.too_large))
    if manifest is None:
        notes.append("no manifest: member list and root files not checked (give --manifest)")
    else:
        problems += _manifest_problems(scan, manifest, data)
        problems += _root_file_problems(scan, manifest, notes)
    if scan.junk:
        (problems if strict else notes).append(counted("junk files (.DS_Store, ._*)", scan.junk))
    per_split = ", ".join(f"{s} {sum(c.values())}" for s, c in counts.items()) or "no images"
    classes = len({w for c in counts.values() for w in c if w})
    summary = f"{len(scan.images)} images in {scan.top}/ ({per_split}; {classes} classes)"
    if manifest is not None and manifest.split.policy == "files" and not any(
            data[k] for k in ("missing", "extra", "misplaced")):
        summary += f", exactly the list of manifest {manifest.name}"
    return LevelResult("structure", not problems, summary, problems, notes, data)
