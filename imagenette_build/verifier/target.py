"""What the archive claims to be: the options of a run, and the target they resolve to.

From the archive's name (its stem: the expected top folder, the size of a sized variant and, when
no `--manifest` is given, the built-in manifest), and from what the build wrote beside it: the
report `<stem>.json` (the recipe, the size) and the member list it names. Anything odd in those
files is a problem to report, never an exception: they may come from anywhere.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import click

from .. import manifest as manifests
from .. import members as member_lists
from .. import provenance
from ..archive_reader import clip, stem_of_archive_name
from ..declare import PATH, JobsType, option
from ..errors import UserError, why
from ..limits import MAX_REPORT_BYTES
from ..manifest import Manifest
from ..procs import default_jobs
from ..readfile import read_bytes
from ..transform import ROUNDINGS, Recipe


@dataclass(frozen=True)
class RecipeGrid:
    """The recipes tried on a deterministic sample of members (level 5, sized variants)."""

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
    """`verify`'s options, declared once (`declare`): the command line and the API are made from them."""

    archive: Path = option(type=PATH, argument=True, help="The archive, output folder or shard to check.")
    manifest: str | None = option(None, help="Built-in manifest name or path to a .toml [default: inferred from the "
                                  "archive's name].")
    imagenet: Path | None = option(None, type=PATH, help="Also compare every member with its source image in this "
                                   "ImageNet copy.")
    strict: bool = option(False, is_flag=True, help="Junk files (.DS_Store, ._*) fail the structure level.")
    jobs: int | None = option(None, type=JobsType(), short="-j", help="Worker processes for decoding and comparing "
                              "[default: all cores].")
    recipe_sample: int = option(20, type=click.IntRange(min=0), help="With --imagenet, sized: images on which every "
                                "resize recipe is tried (0: none).")
    # Not options: what the caller decides
    quiet: bool = False
    grid: RecipeGrid | None = None  # None: the default grid, on `recipe_sample` images
    published_csv: Path | None = None  # None: the table shipped in manifests/

    def __post_init__(self):
        object.__setattr__(self, "jobs", self.jobs or default_jobs())
        if self.grid is None:
            object.__setattr__(self, "grid", RecipeGrid(sample=self.recipe_sample))


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
    report_note: str | None = None  # a report beside it that is not this archive's (then `report` is None)
    member_list_note: str | None = None  # why there is no member list, when it is not the usual reason
    provenance: dict[str, str] | None = None  # the build's <stem>.provenance.csv: {member: member_sha256}
    provenance_name: str | None = None
    provenance_problems: tuple[str, ...] = ()

    @property
    def claims_published_images(self) -> bool:
        """A sized archive that says (by its report) or lets one assume (no report: a download)
        that its images are the published ones."""
        if self.report is None:
            return True
        return self.recipe.published and bool(section(self.report, "fidelity").get("published_bytes_possible", True))

    @property
    def report_path(self) -> Path:
        return self.path.with_name(f"{self.stem}.json")

    format = "tgz"  # what the report says it verified
    what = ""  # and its first line, before the manifest


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
    if reported.isascii() and reported.isdigit() and len(reported) < 10:  # (int() refuses '²' and 4,301 digits)
        return int(reported)
    m = re.fullmatch(r".+-(\d+)", stem)
    return int(m.group(1)) if m else None


# What a build report says of its .tgz (commit.report). A report that says none of it is not the
# archive's: the report of a stem built only as parquet or webdataset ("archive": null), or a `{}`.
ARCHIVE_FIELDS = ("archive", "archive_bytes", "sha256", "md5", "md5_first_mib", "members_sha256")


def read_build_report(path: Path) -> tuple[dict | None, str | None]:
    try:
        report = json.loads(read_bytes(path, MAX_REPORT_BYTES, "a build report").decode("utf-8"))
    except FileNotFoundError:
        return None, None
    except OSError as exc:  # a FIFO, a device, too large: refused before it is read
        return None, f"{path.name}: cannot read: {why(exc)}"
    except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, nested too deep, a number of 5,000 digits
        return None, f"{path.name}: not a readable build report ({clip(str(exc) or type(exc).__name__)})"
    if not isinstance(report, dict):
        return None, f"{path.name}: not a build report (not a JSON object)"
    return report, None


def section(report: dict | None, key: str) -> dict:
    """A JSON object inside the build report, or {} when it is missing or something else."""
    value = (report or {}).get(key)
    return value if isinstance(value, dict) else {}


def _as_the_archive_was_built(report: dict | None) -> dict | None:
    """The report as it describes the archive: an archive kept beside a later build of another
    format carries how its own build differed in `outputs.tgz.earlier_build` (commit.py)."""
    tgz = section(report, "outputs").get("tgz")
    earlier = tgz.get("earlier_build") if isinstance(tgz, dict) else None
    return {**report, **earlier} if isinstance(earlier, dict) else report


def build_recipe(report: dict | None, report_name: str) -> tuple[Recipe, str]:
    recipe = section(report, "options").get("recipe")
    if not isinstance(recipe, dict):
        return Recipe(), f"the published recipe {Recipe().name} (no build report)"
    try:
        return Recipe.from_json(recipe), f"the recipe in {report_name}"
    except (TypeError, ValueError) as exc:
        return Recipe(), f"the published recipe ({report_name} has an unusable recipe: {exc})"


def build_member_list(path: Path, report: dict | None) -> tuple[dict | None, str | None, str | None]:
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


def build_provenance(path: Path, report: dict | None) -> tuple[dict | None, str | None, tuple[str, ...]]:
    """The provenance file the build report names: ({member: member_sha256}, its file name,
    problems). A file changed since the build is still read, so that the rows that changed are named."""
    entry = (report or {}).get("provenance")
    if entry is None:
        return None, None, ()
    name = entry.get("file") if isinstance(entry, dict) else None
    if not isinstance(name, str) or not name or "/" in name or "\0" in name or name.startswith("."):
        return None, None, (f"{path.name}: provenance does not name a file beside it",)
    rows_path = path.with_name(name)
    if not rows_path.exists():
        return None, name, (f"{name}: named by {path.name} but missing",)
    try:
        listing, digest = provenance.read(rows_path)
    except UserError as exc:
        return None, name, (str(exc),)
    if digest != str(entry.get("sha256", "")).lower():
        return listing, name, (f"{name}: changed since the build (its sha256 is not the one {path.name} records)",)
    return listing, name, ()


def resolve_manifest(given: str | None, stem: str, named_by: str) -> tuple[Manifest | None, str]:
    """The manifest given, else the built-in one whose stem `stem` carries; and where it came from."""
    if given is not None:
        return manifests.load(given), "given"
    manifest = infer_manifest(stem)
    return manifest, (f"inferred from {named_by}" if manifest else
                      f"none: no built-in manifest has stem {' or '.join(_stem_candidates(stem))}")


def resolve_target(opts: VerifyOptions) -> Target:
    path = opts.archive
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if not path.is_file():
        raise UserError(f"{path}: is not a file")
    stem = stem_of_archive_name(path.name)
    manifest, manifest_note = resolve_manifest(opts.manifest, stem, "the archive's name")
    report_path = path.with_name(f"{stem}.json")
    report, report_problem = read_build_report(report_path)
    report_note = None
    if report is not None and all(report.get(key) is None for key in ARCHIVE_FIELDS):
        # (its recipe and size are another output's: taking them would excuse this archive's images)
        report, report_note = None, (f"{report_path.name} does not describe {path.name}: it names no archive, size or "
                                     "hash (the report of a parquet or webdataset build, or of none)")
    report = _as_the_archive_was_built(report)
    size = variant_size(stem, manifest.stem if manifest else None, report)
    recipe, recipe_note = build_recipe(report, report_path.name)
    listing, listing_name, listing_problem = build_member_list(report_path, report)
    rows, rows_name, rows_problems = build_provenance(report_path, report)
    return Target(path, stem, manifest, manifest_note, size, report, report_problem, recipe, recipe_note,
                  listing, listing_name, listing_problem, report_note, provenance=rows, provenance_name=rows_name,
                  provenance_problems=rows_problems)
