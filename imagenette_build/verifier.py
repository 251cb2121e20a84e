"""`verify`: is this .tgz the dataset it claims to be? Five levels, each passing or failing alone.

1. identity: size and hashes against every published upload (informational: a self-built archive
   matches none) and against SHA256SUMS, MD5SUMS and the build report beside the archive (a
   mismatch there fails);
2. structure: one top folder named after the archive, no unsafe or unexpected members, the
   manifest's member list exactly (missing, extra, misplaced), its root files (or those of an
   earlier published upload: the 2019-12 uploads had none);
3. members: every member's sha256 against the member list the build wrote beside the archive
   (a changed member is named without the sources), and against the published member list of
   the archive's stem where one ships ("N of N members identical to the published ...");
4. images: every member decodes fully; sized variants have the exact shortest side;
5. source (with --imagenet): every member against its source image: byte for byte (full size,
   and sized members of the published recipe, regenerated here), else by PSNR against a
   regeneration with the build's recipe; a sample also tries other recipes and names the best.

The archive is read once, as a stream (`archive_reader`): hashes, structure and member bytes all
come from that one pass, and member bytes go to workers in batches bounded in bytes, as are the
batches in flight (`engine.ordered_map`). What is held per member is bounded by `limits`; the lists
of problems keep their first few items and a count. Nothing is extracted or written.

Text output shows member names (and every other string) through `printable`: a name cannot forge
a line of the report or send escape sequences to a terminal. JSON output escapes them by itself.
"""

from __future__ import annotations

import csv
import hashlib
import heapq
import io
import json
import math
import os
import re
import statistics
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image
from tqdm import tqdm

from . import manifest as manifests
from . import members as member_lists
from .archive_reader import archive_stem, ArchiveStream, Digests, Entry, clip
from .engine import default_jobs, ordered_map
from .errors import UserError
from .limits import BATCH_BYTES, IN_FLIGHT_BYTES_PER_JOB, MAX_REPORT_BYTES
from .manifest import Manifest
from .noisy import HEADER as NOISY_HEADER
from .outputs import read_sums
from .plan import Plan, make_plan
from .published import Published, published_uploads
from .readfile import read_bytes
from .sources import SourceRef, open_source
from .toolchain import jpeg_problem
from .procs import worker_setup
from .progress import Progress
from .transform import ROUNDINGS, Recipe, describe_error, encode, load_pixels, make_jpegs, resize_pixels

# A member at least this close to its regeneration is the same image made the same way, give or
# take the toolchain. Measured on the synthetic sample: a DCT-scaled build regenerated with a full
# decode gives 41-46 dB, a member with one flipped byte about 10 dB. Neighbouring filters can clear
# it too (lanczos against bicubic: about 42 dB), which is why the recipe sweep ranks recipes.
PSNR_PASS_DB = 40.0
FIRST_FEW = 5
JUNK_NAMES = (".DS_Store", "Thumbs.db")
JUNK_PREFIXES = ("._",)
JUNK_FOLDERS = ("__MACOSX",)
BATCH_IMAGES = 32


# --------------------------------------------------------------------------- options and target


@dataclass(frozen=True)
class RecipeGrid:
    """The recipes tried on a deterministic sample of members (level 4, sized variants)."""

    filters: tuple[str, ...] = ("bicubic", "bilinear", "lanczos", "box", "hamming", "nearest")
    roundings: tuple[str, ...] = ROUNDINGS
    qualities: tuple[int, ...] = (75, 85, 90, 95)
    sample: int = 20  # images; 0 skips the sweep

    def recipes(self, build: Recipe) -> tuple[Recipe, ...]:
        """Every combination, the build's recipe first (it wins ties), all with the build's decode."""
        grid = [Recipe(f, q, r, build.decode) for f in self.filters for r in self.roundings for q in self.qualities]
        return (build, *[r for r in grid if r != build])


@dataclass(frozen=True)
class VerifyOptions:
    archive: Path
    manifest: str | None = None  # name or path; None: inferred from the archive's name
    imagenet: Path | None = None
    strict: bool = False  # junk files (.DS_Store, ._*) fail the structure level
    jobs: int = field(default_factory=default_jobs)
    quiet: bool = False
    grid: RecipeGrid = RecipeGrid()
    published_csv: Path | None = None  # None: the table shipped in manifests/


@dataclass(frozen=True)
class Target:
    """What the archive claims to be, from its name, the manifest and the build report beside it."""

    path: Path
    stem: str  # the archive's name without .tgz: its expected top folder
    manifest: Manifest | None
    manifest_note: str
    size: int | None  # None: full size (original bytes)
    report: dict | None  # the build report <stem>.json beside the archive
    report_problem: str | None
    recipe: Recipe
    recipe_note: str
    member_list: dict[str, str] | None = None  # the build's <stem>.members.sha256, as the report names it
    member_list_name: str | None = None
    member_list_problem: str | None = None

    @property
    def claims_published_images(self) -> bool:
        """A sized archive that says (by its report) or lets one assume (no report: a download)
        that its images are the published ones."""
        if self.report is None:
            return True
        return self.recipe.published and bool(_section(self.report, "fidelity").get("published_bytes_possible", True))

    @property
    def report_path(self) -> Path:
        return self.path.with_name(f"{self.stem}.json")


def _stem_candidates(stem: str) -> list[str]:
    """`imagenette2-160` may be the 160 px variant of `imagenette2` or a full-size `imagenette2-160`."""
    m = re.fullmatch(r"(.+)-\d+", stem)
    return [stem, m.group(1)] if m else [stem]


def infer_manifest(stem: str) -> Manifest | None:
    """The built-in manifest whose stem the archive's name carries, if any."""
    builtins = [manifests.load(name) for name in manifests.builtin_names()]
    for candidate in _stem_candidates(stem):
        for m in builtins:
            if m.stem == candidate:
                return m
    return None


def variant_size(stem: str, manifest_stem: str | None, report: dict | None) -> int | None:
    """The shortest side of a sized variant, None for full size: from the name when it matches the
    manifest's stem, else the build report's `size`, else a trailing `-<digits>` in the name."""
    if manifest_stem is not None:
        if stem == manifest_stem:
            return None
        m = re.fullmatch(re.escape(manifest_stem) + r"-(\d+)", stem)
        if m:
            return int(m.group(1))
    reported = str((report or {}).get("size", ""))
    if reported == "full":
        return None
    if reported.isdigit() and len(reported) < 10:  # int() refuses thousands of digits
        return int(reported)
    m = re.fullmatch(r".+-(\d+)", stem)
    return int(m.group(1)) if m else None


def _read_build_report(path: Path) -> tuple[dict | None, str | None]:
    try:
        report = json.loads(read_bytes(path, MAX_REPORT_BYTES, "a build report").decode("utf-8"))
    except FileNotFoundError:
        return None, None
    except OSError as exc:  # a FIFO, a device, too large: refused before it is read
        return None, f"{path.name}: cannot read: {exc.strerror or exc}"
    except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, nested too deep, a number of 5,000 digits
        return None, f"{path.name}: not a readable build report ({clip(str(exc) or type(exc).__name__)})"
    if not isinstance(report, dict):
        return None, f"{path.name}: not a build report (not a JSON object)"
    return report, None


def _section(report: dict | None, key: str) -> dict:
    """A JSON object inside the build report, or {} when it is missing or something else."""
    value = (report or {}).get(key)
    return value if isinstance(value, dict) else {}


def _build_recipe(report: dict | None, report_name: str) -> tuple[Recipe, str]:
    recipe = _section(report, "options").get("recipe")
    if not isinstance(recipe, dict):
        return Recipe(), f"the published recipe {Recipe().name} (no build report)"
    try:
        return Recipe.from_json(recipe), f"the recipe in {report_name}"
    except (TypeError, ValueError) as exc:
        return Recipe(), f"the published recipe ({report_name} has an unusable recipe: {exc})"


def _build_member_list(path: Path, report: dict | None) -> tuple[dict | None, str | None, str | None]:
    """The member list the build report names: (list, its file name, problem)."""
    entry = (report or {}).get("members_sha256")
    if entry is None:
        return None, None, None
    name = entry.get("file") if isinstance(entry, dict) else None
    if not isinstance(name, str) or not name or "/" in name or "\0" in name or name.startswith("."):
        return None, None, f"{path.name}: members_sha256 does not name a file beside it"
    list_path = path.with_name(name)
    if not list_path.exists():
        return None, name, f"{name}: named by {path.name} but missing"
    try:
        listing, digest = member_lists.read(list_path)
    except UserError as exc:
        return None, name, str(exc)
    if digest != str(entry.get("sha256", "")).lower():
        return None, name, f"{name}: its sha256 is not the one {path.name} records"
    return listing, name, None


def resolve_target(opts: VerifyOptions) -> Target:
    path = opts.archive
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if not path.is_file():
        raise UserError(f"{path}: is not a file")
    stem = archive_stem(path.name)
    if opts.manifest is not None:
        manifest = manifests.load(opts.manifest)
        manifest_note = "given"
    else:
        manifest = infer_manifest(stem)
        manifest_note = ("inferred from the archive's name" if manifest else
                         f"none: no built-in manifest has stem {' or '.join(_stem_candidates(stem))}")
    report_path = path.with_name(f"{stem}.json")
    report, report_problem = _read_build_report(report_path)
    size = variant_size(stem, manifest.stem if manifest else None, report)
    recipe, recipe_note = _build_recipe(report, report_path.name)
    listing, listing_name, listing_problem = _build_member_list(report_path, report)
    return Target(path, stem, manifest, manifest_note, size, report, report_problem, recipe, recipe_note,
                  listing, listing_name, listing_problem)


# --------------------------------------------------------------------------- level results


@dataclass
class LevelResult:
    name: str
    passed: bool
    summary: str
    problems: list[str] = field(default_factory=list)  # why it failed, the first few named
    notes: list[str] = field(default_factory=list)  # informational
    data: dict = field(default_factory=dict)  # the numbers, for --json


class FirstFew:
    """A count and the first FIRST_FEW items: all a problem line shows, in bounded memory (a hostile
    archive can hold millions of bad members)."""

    def __init__(self) -> None:
        self.count = 0
        self.first: list[str] = []

    def append(self, item: str) -> None:
        self.count += 1
        if len(self.first) < FIRST_FEW:
            self.first.append(item)

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[str]:
        return iter(self.first)


def _first_few(items: Iterable[str]) -> str:
    items = items if isinstance(items, FirstFew) else list(items)
    shown = ", ".join(islice(items, FIRST_FEW))
    return shown + (f", ... ({len(items) - FIRST_FEW} more)" if len(items) > FIRST_FEW else "")


def _counted(label: str, items: list[str] | FirstFew) -> str:
    return f"{len(items)} {label}: {_first_few(items)}"


def printable(text: str) -> str:
    r"""`text` safe for a terminal and a line-based log: a backslash and every character that is not
    printable (CR, LF, ESC and the other control characters, format characters, line separators)
    as a Python-style escape (\\, \x1b, \u2028), a byte that was not UTF-8 (tarfile keeps it as
    a surrogate) as \xNN. A member name cannot forge a report line or move the cursor."""
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(c if c.isprintable() and c != "\\" else _escaped(c) for c in text)


def _escaped(c: str) -> str:
    n = ord(c)
    if c == "\\":
        return "\\\\"
    if 0xDC80 <= n <= 0xDCFF:  # surrogateescape's stand-in for the byte n - 0xDC00
        n -= 0xDC00
    return f"\\x{n:02x}" if n <= 0xFF else f"\\u{n:04x}" if n <= 0xFFFF else f"\\U{n:08x}"


# --------------------------------------------------------------------------- level 1: identity


def matches_upload(d: Digests, row: Published) -> bool:
    """Every value the row knows must match; a row that knows nothing matches nothing."""
    pairs = [(row.size, d.size), (row.md5.lower(), d.md5), (row.md5_first_mib.lower(), d.md5_first_mib),
             (row.sha256.lower(), d.sha256)]
    known = [(want, got) for want, got in pairs if want not in (None, "")]
    return bool(known) and all(want == got for want, got in known)


def published_match_message(d: Digests, rows: list[Published]) -> tuple[str, list[Published]]:
    found = [r for r in rows if matches_upload(d, r)]
    if not found:
        return "matches no published upload", found
    return "matches " + "; ".join(f"{r.archive} as uploaded {r.uploaded}" for r in found), found


def _check_sums_files(target: Target, d: Digests) -> tuple[list[str], list[str], dict]:
    """SHA256SUMS / MD5SUMS beside the archive: a line for it that disagrees is a failure."""
    problems, notes, data = [], [], {}
    for sums_name, digest_len, actual in (("SHA256SUMS", 64, d.sha256), ("MD5SUMS", 32, d.md5)):
        path = target.path.with_name(sums_name)
        if not os.path.lexists(path):  # (anything else there, a FIFO say, read_sums names and refuses)
            continue
        try:
            listed = read_sums(path, digest_len).get(target.path.name)
        except UserError as exc:
            problems.append(str(exc))
            data[sums_name] = "unreadable"
            continue
        if listed is None:
            notes.append(f"{sums_name} beside it has no line for {target.path.name}")
            data[sums_name] = "no line"
        elif listed.lower() == actual:
            notes.append(f"{sums_name}: matches")
            data[sums_name] = "matches"
        else:
            problems.append(f"{sums_name} says {listed}, the file's hash is {actual}")
            data[sums_name] = "differs"
    return problems, notes, data


def _check_build_report(target: Target, d: Digests) -> tuple[list[str], list[str], str | None]:
    name = target.report_path.name
    if target.report_problem:
        return [target.report_problem], [], "unreadable"
    if target.report is None:
        return [], [], None
    problems = []
    for key, actual in (("archive_bytes", d.size), ("sha256", d.sha256), ("md5", d.md5)):
        if key not in target.report:
            continue
        said = target.report[key]
        if not isinstance(said, (str, int)):  # nothing else is printed: it could be nested a thousand deep
            problems.append(f"{name} has a {key} that is neither a number nor a string")
        elif str(said).lower() != str(actual):
            problems.append(f"{name} says {key} {clip(str(said))}, the file has {actual}")
    return problems, ([] if problems else [f"{name}: size, sha256 and md5 match"]), ("differs" if problems else "matches")


def identity_level(target: Target, d: Digests, published: list[Published]) -> LevelResult:
    message, found = published_match_message(d, published)
    sums_problems, sums_notes, sums_data = _check_sums_files(target, d)
    report_problems, report_notes, report_state = _check_build_report(target, d)
    problems = sums_problems + report_problems
    data = {"size": d.size, "sha256": d.sha256, "md5": d.md5, "md5_first_mib": d.md5_first_mib,
            "published_matches": [{"archive": r.archive, "uploaded": r.uploaded} for r in found],
            "published_message": message, "sums_files": sums_data, "build_report": report_state}
    summary = f"{d.size:,} bytes, sha256 {d.sha256[:16]}..., md5 of the first MiB {d.md5_first_mib}; {message}"
    return LevelResult("identity", not problems, summary, problems, sums_notes + report_notes, data)


# --------------------------------------------------------------------------- level 2: structure


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
        if entry.name in self.seen:
            self.duplicates.append(entry.name)
            return None
        self.seen.add(entry.name)
        first, _, rel = entry.name.partition("/")
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
             if p.root_files is not None and archive_stem(p.archive) == scan.top and sorted(p.root_files) == found]
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
        problems.append(_counted("unexpected root files", unexpected))
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
    problems = [f"{where}: " + _counted("bad rows", bad)] if bad else []
    missing = len(labelled - seen)
    if missing:
        problems.append(f"{where}: no row for {missing} images of the archive, first: "
                        f"{_first_few(sorted(labelled - seen))}")
    return problems


def _manifest_problems(scan: StructureScan, manifest: Manifest, data: dict) -> list[str]:
    top = scan.top
    if manifest.split.policy == "files":
        diff = diff_against_list(scan.images, manifest)
        data.update(missing=len(diff.missing), extra=len(diff.extra), misplaced=len(diff.misplaced),
                    missing_first=diff.missing[:FIRST_FEW], extra_first=diff.extra[:FIRST_FEW],
                    misplaced_first=diff.misplaced[:FIRST_FEW])
        problems = []
        for label, items in (("missing", diff.missing), ("extra (not in the manifest)", diff.extra),
                             ("in the wrong split or class", diff.misplaced)):
            if items:
                problems.append(_counted(label, [f"{top}/{i}" for i in items]))
        return problems
    bad = outside_policy(scan.images, manifest)
    data.update(outside_manifest=len(bad), outside_manifest_first=bad[:FIRST_FEW])
    return [_counted("members outside the manifest's splits and classes", [f"{top}/{b}" for b in bad])] if bad else []


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
        problems.append(_counted("unsafe members (never extract this archive)", scan.unsafe))
    others = sorted(t for t in scan.tops if t != scan.top)
    if others:
        problems.append(f"expected one top folder {scan.top}/, also found: {_first_few(o + '/' for o in others)}")
    elif not scan.members and not stream_problem:
        problems.append("the archive holds no members")
    if scan.duplicates:
        problems.append(_counted("members stored twice", scan.duplicates))
    if scan.too_large:
        problems.append(_counted("members too large to be images", scan.too_large))
    if manifest is None:
        notes.append("no manifest: member list and root files not checked (give --manifest)")
    else:
        problems += _manifest_problems(scan, manifest, data)
        problems += _root_file_problems(scan, manifest, notes)
    if scan.junk:
        (problems if strict else notes).append(_counted("junk files (.DS_Store, ._*)", scan.junk))
    per_split = ", ".join(f"{s} {sum(c.values())}" for s, c in counts.items()) or "no images"
    classes = len({w for c in counts.values() for w in c if w})
    summary = f"{len(scan.images)} images in {scan.top}/ ({per_split}; {classes} classes)"
    if manifest is not None and manifest.split.policy == "files" and not any(
            data[k] for k in ("missing", "extra", "misplaced")):
        summary += f", exactly the list of manifest {manifest.name}"
    return LevelResult("structure", not problems, summary, problems, notes, data)


# --------------------------------------------------------------------------- level 3: members


@dataclass(frozen=True)
class PublishedMembers:
    """The sha256 of every image member of a published archive (one list may serve several
    uploads that hold the same image bytes)."""

    label: str  # "imagewoof2-320 (uploaded 2019-12-09, 2021-02)"
    digests: dict[str, str]


def published_member_lists(manifest: Manifest | None, stem: str) -> list[PublishedMembers]:
    if manifest is None:
        return []
    by_file: dict[str, list[str]] = {}
    for p in manifest.published:
        if p.members and archive_stem(p.archive) == stem:
            by_file.setdefault(p.members, []).append(p.uploaded)
    out = []
    for name, dates in by_file.items():
        digests, _ = member_lists.read(manifest.base_dir / name)
        out.append(PublishedMembers(f"{stem} (uploaded {', '.join(dates)})", digests))
    return out


@dataclass
class ListComparison:
    identical: list[str] = field(default_factory=list)
    differ: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, found: dict[str, str], listed: dict[str, str]) -> ListComparison:
        c = cls()
        for rel in sorted(listed):
            got = found.get(rel)
            (c.missing if got is None else c.identical if got == listed[rel] else c.differ).append(rel)
        c.extra = sorted(rel for rel in found if rel not in listed)
        return c

    def problems(self, top: str) -> list[str]:
        out = []
        for label, items in (("members differ", self.differ), ("members missing", self.missing),
                             ("members not in the list", self.extra)):
            if items:
                out.append(_counted(label, [f"{top}/{i}" for i in items]))
        return out

    def to_json(self) -> dict:
        return {"identical": len(self.identical), "differ": self.differ, "missing": self.missing, "extra": self.extra}


def members_level(scan: StructureScan, target: Target, published: list[PublishedMembers]) -> LevelResult:
    """Every member's sha256 against the build's member list (any difference fails: the archive
    changed after it was built) and against the published lists of its stem (differences fail
    when the archive claims the published images: no build report, or the published recipe)."""
    problems, notes, data = [], [], {}
    parts = []
    if target.member_list_problem:
        problems.append(target.member_list_problem)
    if target.member_list is not None:
        c = ListComparison.of(scan.digests, target.member_list)
        data["build_list"] = {"file": target.member_list_name, **c.to_json()}
        problems += [f"against {target.member_list_name}: {p}" for p in c.problems(scan.top)]
        parts.append(f"{len(c.identical)} of {len(target.member_list)} members as {target.member_list_name} lists")
    images = {rel: d for rel, d in scan.digests.items() if "/" in rel and not is_junk(rel)}
    data["published"] = []
    for pub in published:
        c = ListComparison.of(images, pub.digests)
        data["published"].append({"list": pub.label, **c.to_json()})
        parts.append(f"{len(c.identical)} of {len(pub.digests)} members identical to the published {pub.label}")
        different = c.problems(scan.top)
        if different and target.claims_published_images:
            problems += [f"against the published {pub.label}: {p}" for p in different]
        elif different:
            notes.append(f"not the published images: built with {target.recipe_note} ({target.recipe.name}); "
                         + "; ".join(different))
    if not parts:
        notes.append("no member list to compare with (no build report naming one beside the archive, "
                     "and no published list for this name)")
    summary = "; ".join(parts) or "no member list"
    return LevelResult("members", not problems, summary, problems, notes, data)


# --------------------------------------------------------------------------- per-image work (workers)


@dataclass(frozen=True)
class CheckSpec:
    """What each worker checks; plain data, so it pickles to any worker process."""

    size: int | None  # None: full size
    recipe: Recipe  # the build's, for regenerating sized members
    grid: tuple[Recipe, ...] = ()  # tried on sampled members


@dataclass(frozen=True)
class SourceMatch:
    identical: bool  # the member's bytes equal the source's (full) or the regeneration's (sized)
    psnr: float  # dB; inf for identical pixels, 0 for a different geometry
    max_diff: int
    note: str = ""


@dataclass(frozen=True)
class ImageResult:
    member: str
    error: str | None = None  # the member does not decode
    width: int = 0
    height: int = 0
    mode: str = ""
    source: SourceMatch | None = None
    source_error: str | None = None  # the source could not be read or regenerated
    sweep: tuple[float, ...] | None = None  # PSNR per CheckSpec.grid recipe


def pixel_difference(a: Image.Image, b: Image.Image) -> tuple[float, int, str]:
    """(PSNR in dB, max abs difference, note). A different geometry is PSNR 0: not the same image."""
    if a.size != b.size:
        return 0.0, 255, f"{a.size[0]}x{a.size[1]} vs {b.size[0]}x{b.size[1]}"
    note = "" if a.mode == b.mode else f"mode {a.mode} vs {b.mode}"
    mode = a.mode if a.mode == b.mode and a.mode in ("L", "RGB") else "RGB"
    x = np.asarray(a.convert(mode), dtype=np.int16)
    y = np.asarray(b.convert(mode), dtype=np.int16)
    diff = np.abs(x - y)
    mse = float(np.mean(np.square(diff, dtype=np.float64)))
    psnr = math.inf if mse == 0 else 10 * math.log10(255 ** 2 / mse)
    return psnr, int(diff.max()), note


def _compare_with_source(member: Image.Image, data: bytes, src: bytes, spec: CheckSpec) -> SourceMatch:
    expected = src if spec.size is None else make_jpegs(src, (spec.size,), spec.recipe)[0]
    if expected == data:
        return SourceMatch(True, math.inf, 0)
    psnr, max_diff, note = pixel_difference(member, load_pixels(expected))
    return SourceMatch(False, psnr, max_diff, note)


def _sweep(member: Image.Image, src: bytes, spec: CheckSpec) -> tuple[float, ...]:
    """PSNR of the member against each grid recipe's output; one resize per filter and rounding,
    shared by every quality."""
    resized: dict[tuple[str, str, str], Image.Image] = {}
    out = []
    for recipe in spec.grid:
        key = (recipe.filter, recipe.rounding, recipe.decode)
        if key not in resized:
            resized[key] = resize_pixels(src, (spec.size,), recipe)[spec.size]
        out.append(pixel_difference(member, load_pixels(encode(resized[key], recipe.quality)))[0])
    return tuple(out)


def check_member(member: str, data: bytes, ref: SourceRef | None, sampled: bool, spec: CheckSpec) -> ImageResult:
    try:
        img = load_pixels(data)
    except Exception as exc:  # any decoder failure is a property of the member
        return ImageResult(member, error=describe_error(exc))
    base = dict(member=member, width=img.size[0], height=img.size[1], mode=img.mode)
    if ref is None:
        return ImageResult(**base)
    try:
        src = ref.read()
        match = _compare_with_source(img, data, src, spec)
        sweep = _sweep(img, src, spec) if sampled and spec.grid and spec.size is not None else None
    except Exception as exc:  # an unreadable source or a failed regeneration: named, never raised
        return ImageResult(**base, source_error=f"{ref}: {describe_error(exc)}")
    return ImageResult(**base, source=match, sweep=sweep)


def check_batch(items: list[tuple[str, bytes, SourceRef | None, bool]], spec: CheckSpec) -> list[ImageResult]:
    """The worker task: one result per (member, bytes, source ref, sampled) item, in order."""
    return [check_member(*item, spec) for item in items]


# --------------------------------------------------------------------------- levels 3 and 4


class ImageTally:
    def __init__(self, size: int | None):
        self.size = size
        self.checked = 0
        self.errors = FirstFew()
        self.wrong_size = FirstFew()
        self.modes: Counter[str] = Counter()
        self.shortest: list[int] = []  # min and max so far

    def add(self, r: ImageResult) -> None:
        self.checked += 1
        if r.error:
            self.errors.append(f"{r.member} ({r.error})")
            return
        self.modes[r.mode] += 1
        short = min(r.width, r.height)
        self.shortest = [min(self.shortest[0], short), max(self.shortest[1], short)] if self.shortest else [short, short]
        if self.size is not None and short != self.size:
            self.wrong_size.append(f"{r.member} ({r.width}x{r.height})")

    def level(self, stream_complete: bool) -> LevelResult:
        problems, notes = [], []
        if self.errors:
            problems.append(_counted("members do not decode", self.errors))
        if self.wrong_size:
            problems.append(_counted(f"members whose shortest side is not {self.size}", self.wrong_size))
        if not self.checked:
            problems.append("no images to check")
        if not stream_complete:
            notes.append("the archive stream broke: only the images before the break were checked")
        modes = ", ".join(f"{m} {n}" for m, n in self.modes.most_common()) or "none"
        sides = f"shortest side {self.shortest[0]}..{self.shortest[1]} px" if self.shortest else "no sizes"
        if self.size is not None and self.shortest and not self.wrong_size:
            sides = f"shortest side {self.size} px on every image"
        decoded = self.checked - len(self.errors)
        summary = f"{decoded} of {self.checked} decode fully; {sides}; modes {modes}"
        data = {"checked": self.checked, "decode_errors": len(self.errors), "decode_errors_first": self.errors.first,
                "wrong_size": len(self.wrong_size), "wrong_size_first": self.wrong_size.first,
                "modes": dict(self.modes), "shortest_side_min": self.shortest[0] if self.shortest else None,
                "shortest_side_max": self.shortest[1] if self.shortest else None, "expected_shortest_side": self.size}
        return LevelResult("images", not problems, summary, problems, notes, data)


class Compared(NamedTuple):
    psnr: float
    member: str
    max_diff: int
    note: str
    identical: bool

    def describe(self) -> str:
        extra = f", {self.note}" if self.note else ""
        return f"{self.member} ({_fmt_db(self.psnr)} dB, max diff {self.max_diff}{extra})"


def _fmt_db(psnr: float) -> str:
    return "inf" if math.isinf(psnr) else f"{psnr:.1f}"


def _json_db(psnr: float) -> float | None:
    """JSON has no infinity: null stands for identical pixels."""
    return None if math.isinf(psnr) else round(psnr, 2)


class SourceTally:
    """Level 5. Members the plan cannot place are failures only when the manifest has no file list:
    with a list, the structure level already names them as extra or misplaced.

    `exact`: sized members must regenerate byte for byte (the published recipe, on a machine whose
    JPEG library can make its bytes); otherwise they must clear `threshold` dB of PSNR."""

    def __init__(self, plan: Plan, size: int | None, threshold: float, grid: tuple[Recipe, ...],
                 exact: bool = False):
        self.plan = plan
        self.size = size
        self.threshold = threshold
        self.grid = grid
        self.exact = exact or size is None
        self.missing_sources = set(plan.missing)
        self.has_list = plan.manifest.split.policy == "files"
        self.compared: list[Compared] = []
        self.identical = 0
        self.errors = FirstFew()
        self.source_missing = FirstFew()
        self.unplaced = FirstFew()
        self.sweep: list[tuple[str, tuple[float, ...]]] = []

    def add(self, r: ImageResult, rel: str) -> None:
        if r.error:
            return  # the images level names it
        if r.source_error:
            self.errors.append(r.source_error)
        elif r.source is not None:
            self.identical += r.source.identical
            self.compared.append(Compared(r.source.psnr, r.member, r.source.max_diff, r.source.note,
                                          r.source.identical))
            if r.sweep is not None:
                self.sweep.append((r.member, r.sweep))
        elif rel in self.missing_sources:
            self.source_missing.append(r.member)
        else:
            self.unplaced.append(r.member)

    def _bad(self) -> list[Compared]:
        """Exact: anything but the expected bytes. Otherwise: below the PSNR threshold."""
        if self.exact:
            return sorted(c for c in self.compared if not c.identical)
        return sorted(c for c in self.compared if c.psnr < self.threshold)

    def level(self) -> LevelResult:
        problems, notes = [], []
        bad = self._bad()
        full = self.size is None
        if bad:
            label = ("members differ from their source" if full else
                     "members differ from their regeneration" if self.exact else
                     f"members below {self.threshold:g} dB PSNR")
            problems.append(_counted(label, [c.describe() for c in bad]))
        if self.errors:
            problems.append(_counted("sources could not be read or regenerated", self.errors))
        if self.source_missing:
            problems.append(_counted(f"members whose source image is missing from {self.plan.source}",
                                     self.source_missing))
        if self.unplaced:
            (notes if self.has_list else problems).append(_counted("members with no source in the plan", self.unplaced))
        if not self.compared and not problems:
            problems.append("no member could be compared with its source")
        summary, data = self._summary()
        if not full:
            worst = [c for c in sorted(self.compared)[:FIRST_FEW] if not c.identical]
            if worst and not bad:
                notes.append("lowest PSNR: " + ", ".join(c.describe() for c in worst))
            sweep_note, data["recipe_sweep"] = self._sweep_summary()
            if sweep_note:
                notes.append(sweep_note)
        return LevelResult("source", not problems, summary, problems, notes, data)

    def _summary(self) -> tuple[str, dict]:
        n = len(self.compared)
        data = {"compared": n, "identical": self.identical, "exact": self.exact, "threshold_db": self.threshold,
                "errors": len(self.errors), "source_missing": len(self.source_missing),
                "unplaced": len(self.unplaced), "source": self.plan.source}
        if self.size is None:
            return f"{self.identical} of {n} members byte-identical to their source", data
        psnrs = [c.psnr for c in self.compared]
        data["worst"] = [{"member": c.member, "psnr_db": _json_db(c.psnr), "max_abs_diff": c.max_diff, "note": c.note}
                         for c in sorted(self.compared)[:FIRST_FEW]]
        if not psnrs:
            return "no member compared", data
        median, low = statistics.median(psnrs), min(psnrs)
        data.update(median_psnr_db=_json_db(median), min_psnr_db=_json_db(low))
        rule = "every image byte-identical" if self.exact else f"every image >= {self.threshold:g} dB"
        return (f"{n} members regenerated and compared: {self.identical} byte-identical, PSNR median "
                f"{_fmt_db(median)} dB, min {_fmt_db(low)} dB (pass: {rule})"), data

    def _sweep_summary(self) -> tuple[str | None, dict | None]:
        if not self.sweep or not self.grid:
            return None, None
        ranking = []
        for i, recipe in enumerate(self.grid):
            values = [psnrs[i] for _, psnrs in self.sweep]
            exact = sum(math.isinf(v) for v in values)
            ranking.append((statistics.median(values), min(values), exact, -i, recipe))
        # Highest median PSNR wins; then the highest minimum, the most exact images, grid order
        # (the build's recipe comes first, so it wins a full tie).
        ranking.sort(key=lambda row: row[:4], reverse=True)
        n = len(self.sweep)
        top = ", ".join(f"{recipe_name(r)} {_fmt_db(med)} dB ({exact}/{n} exact)"
                        for med, _, exact, _, r in ranking[:3])
        data = {"sample": [m for m, _ in self.sweep], "best": recipe_name(ranking[0][4]),
                "ranking": [{"recipe": recipe_name(r), "median_psnr_db": _json_db(med), "min_psnr_db": _json_db(low),
                             "exact": exact} for med, low, exact, _, r in ranking]}
        return f"best of {len(self.grid)} recipes on {n} sampled images, by median PSNR: {top}", data


def recipe_name(r: Recipe) -> str:
    return f"{r.filter}/{r.rounding}/q{r.quality}"


def sample_members(members: Iterable[str], n: int) -> set[str]:
    """A deterministic sample: the first n members by sha256 of their path (holding n, not all)."""
    return set(heapq.nsmallest(n, members, key=lambda m: hashlib.sha256(m.encode()).hexdigest()))


# --------------------------------------------------------------------------- the pass


@dataclass
class Report:
    target: Target
    levels: list[LevelResult]

    @property
    def passed(self) -> bool:
        return all(level.passed for level in self.levels)

    def to_json(self) -> dict:
        t = self.target
        return {
            "archive": str(t.path),
            "manifest": t.manifest.name if t.manifest else None,
            "manifest_from": t.manifest_note,
            "size": "full" if t.size is None else t.size,
            "recipe": t.recipe.to_json(),
            "recipe_from": t.recipe_note,
            "passed": self.passed,
            "levels": [{"level": lv.name, "passed": lv.passed, "summary": lv.summary, "problems": lv.problems,
                        "notes": lv.notes, **lv.data} for lv in self.levels],
        }

    def lines(self) -> list[str]:
        """The text report, every line through `printable`."""
        return [printable(line) for line in self._lines()]

    def _lines(self) -> list[str]:
        t = self.target
        size = "full size" if t.size is None else f"{t.size} px"
        manifest = t.manifest.name if t.manifest else "none"
        out = [f"verify {t.path}: manifest {manifest} ({t.manifest_note}), {size}"]
        for lv in self.levels:
            out.append(f"{'PASS' if lv.passed else 'FAIL'}  {lv.name:<9}  {lv.summary}")
            out += [f"      - {p}" for p in lv.problems]
            out += [f"        {n}" for n in lv.notes]
        failed = [lv.name for lv in self.levels if not lv.passed]
        out.append(f"FAILED: {', '.join(failed)}" if failed else f"passed: {len(self.levels)} levels")
        return out


def _bar(quiet: bool, **kwargs) -> tqdm:
    return tqdm(file=sys.stderr, disable=quiet, dynamic_ncols=True, mininterval=0.5, **kwargs)


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
            _bar(opts.quiet, total=_expected_images(target, plan), desc="verify", unit="img") as bar:
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
