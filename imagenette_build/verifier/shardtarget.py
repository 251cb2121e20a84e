"""What a folder of shards (`<stem>-parquet/`, `<stem>-wds/`), or one shard in it, claims to be.

The folder's name gives the format and the stem; beside the folder, the build wrote the report
`<stem>.json` (its `outputs.<format>` entry lists every shard with its size and hashes; `counts`,
`classes`, `images`, the recipe and the size, as that output was built), the sums lines
`<stem>-parquet/<shard>` in SHA256SUMS and MD5SUMS, and, with the .tgz, the member list
`<stem>.members.sha256`. Those are the truth the shards are checked against; anything odd in them
is a problem to report, never an exception.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..commit import EARLIER
from ..errors import UserError
from ..formats import FORMATS
from ..limits import MAX_SHARDS
from ..manifest import Manifest
from ..sums import SUM_FILES, read_sums
from ..transform import Recipe
from .target import VerifyOptions, build_member_list, build_recipe, read_build_report, resolve_manifest, section, \
    variant_size

SHARD_FORMATS = {fmt: cls for fmt, cls in FORMATS.items() if cls.folder}
ACCEPTED = ("verify reads a .tgz archive, a <stem>-parquet/ or <stem>-wds/ folder of shards that a build wrote, "
            "or one shard in such a folder")
# What must be alike for the .tgz's member list to list the images of another output of the stem.
_SAME_IMAGES = (("manifest",), ("size",), ("options", "recipe"), ("toolchain", "fingerprint"))


def shard_name_re(ext: str) -> re.Pattern:
    """`<split>-NNNNN-of-NNNNN.<ext>` (`formats.base.Shards.shard_name`)."""
    return re.compile(rf"(?P<split>.+)-(?P<number>\d{{5,}})-of-(?P<total>\d{{5,}})\.{re.escape(ext)}")


@dataclass(frozen=True)
class ShardTarget:
    """A folder of shards (`only` None) or one shard of it, and what the files beside it say."""

    path: Path  # as given
    folder: Path
    format: str  # "parquet", "webdataset"
    ext: str
    stem: str
    only: str | None  # the one shard verified, by name
    manifest: Manifest | None
    manifest_note: str
    size: int | None
    report: dict | None  # the build report as this output was built (its entry's `earlier_build` applied)
    report_problem: str | None
    report_note: str | None
    recipe: Recipe
    recipe_note: str
    files: dict[str, dict] | None  # the report entry's shards by name: {"bytes", "sha256", "md5"}
    sums: dict[str, dict[str, str] | None]  # {sums file: {shard name: digest}}; None: unreadable
    problems: list[str] = field(default_factory=list)  # the report entry or a sums file is unusable
    member_list: dict[str, str] | None = None  # image paths only (shards hold no root files)
    member_list_name: str | None = None
    member_list_problem: str | None = None
    member_list_note: str | None = None

    @property
    def what(self) -> str:
        return (f"{self.format} shard {self.only} of {self.stem}, " if self.only else
                f"{self.format} shards of {self.stem}, ")

    @property
    def claims_published_images(self) -> bool:  # as `Target.claims_published_images`
        if self.report is None:
            return True
        return self.recipe.published and bool(section(self.report, "fidelity").get("published_bytes_possible", True))

    @property
    def documents(self) -> set[str]:
        """The names of the documents a build puts in the folder (card, Croissant, contact sheet)."""
        return {path.partition("/")[2] for path in FORMATS[self.format].document_names(self.stem).values()}

    def _named(self) -> set[str]:
        names = set(self.files or ())
        for lines in self.sums.values():
            names |= set(lines or ())
        return names

    @property
    def listed(self) -> set[str]:
        """Every shard name a sums line or the report lists (not its documents)."""
        return self._named() - self.documents

    @property
    def listed_documents(self) -> set[str]:
        """The documents a sums line or the report lists: checked against them, never read as shards."""
        return set() if self.only else self._named() & self.documents


def shard_target(opts: VerifyOptions) -> ShardTarget | None:
    """The shards `opts.archive` names, or None for anything else (a .tgz: `target.resolve_target`).
    A folder that is not a folder of shards, and a shard outside one, are UserErrors."""
    path = opts.archive
    if not os.path.lexists(path):
        return None
    absolute = Path(os.path.abspath(path))
    if absolute.is_dir():
        fmt = _format_of(absolute)
        if fmt is None:
            raise UserError(f"{path}: a folder, not one of shards: {ACCEPTED}")
        return _resolve(opts, fmt, absolute, None)
    for fmt, cls in SHARD_FORMATS.items():
        if absolute.name.endswith(f".{cls.ext}"):
            if _format_of(absolute.parent) != fmt:
                raise UserError(f"{path}: a .{cls.ext} file outside a <stem>-{cls.suffix}/ folder: {ACCEPTED}")
            if not (absolute.is_symlink() or absolute.is_file()):
                raise UserError(f"{path}: is not a file")
            return _resolve(opts, fmt, absolute.parent, absolute.name)
    return None


def _format_of(folder: Path) -> str | None:
    for fmt, cls in SHARD_FORMATS.items():
        suffix = f"-{cls.suffix}"
        if folder.name.endswith(suffix) and len(folder.name) > len(suffix):
            return fmt
    return None


def _dig(report: dict | None, keys: tuple[str, ...]):
    for key in keys:
        report = report.get(key) if isinstance(report, dict) else None
    return report


def _entry_files(entry: dict, folder: str, report_name: str) -> tuple[dict[str, dict] | None, str | None]:
    """The shards the report's entry lists, by name; or a problem when the entry is unusable."""
    files = entry.get("files")
    if not isinstance(files, list) or len(files) > MAX_SHARDS:
        return None, f"{report_name}: its entry for {folder}/ does not list its files"
    out: dict[str, dict] = {}
    for f in files:
        path = f.get("path") if isinstance(f, dict) else None
        if not (isinstance(path, str) and path.startswith(f"{folder}/") and type(f.get("bytes")) is int
                and all(isinstance(f.get(k), str) for k in ("sha256", "md5"))):
            return None, f"{report_name}: its entry for {folder}/ lists a file without its path, size or hashes"
        out[path[len(folder) + 1:]] = {"bytes": f["bytes"], "sha256": f["sha256"].lower(), "md5": f["md5"].lower()}
    return out, None


def _sums(folder: Path, only: str | None) -> tuple[dict[str, dict[str, str] | None], list[str]]:
    """The lines of the folder's files in SHA256SUMS and MD5SUMS beside it, by shard name."""
    prefix = f"{folder.name}/"
    out: dict[str, dict[str, str] | None] = {}
    problems = []
    for name, digest_len in SUM_FILES.items():
        path = folder.parent / name
        if not os.path.lexists(path):
            continue
        kept = [0]

        def wanted(line_name: str) -> bool:
            if only is not None:
                return line_name == prefix + only
            if not line_name.startswith(prefix):
                return False
            kept[0] += 1
            if kept[0] > MAX_SHARDS:
                raise ValueError(f": more than {MAX_SHARDS:,} lines for files in {prefix}, more than verify holds")
            return True

        try:
            lines = read_sums(path, digest_len, only=wanted)
        except UserError as exc:  # (a DataError: not UTF-8, a line sha256sum cannot read, a FIFO, ...)
            problems.append(str(exc))
            out[name] = None
            continue
        out[name] = {line_name[len(prefix):]: digest for line_name, digest in lines.items()}
    return out, problems


def _member_list(report_path: Path, report: dict, how: dict) -> tuple[dict | None, str | None, str | None, str | None]:
    """The .tgz's member list, when the report says it lists the images of this output: (its image
    paths, its name, problem, note)."""
    tgz = section(report, "outputs").get("tgz")
    listing, name, problem = build_member_list(report_path, report)
    if listing is None and problem is None:
        return None, None, None, "no member list beside it (a build writes one with the .tgz)"
    tgz_how = {**report, **tgz[EARLIER]} if isinstance(tgz, dict) and isinstance(tgz.get(EARLIER), dict) else report
    differ = [".".join(keys) for keys in _SAME_IMAGES if _dig(tgz_how, keys) != _dig(how, keys)]
    if differ:
        return None, name, None, (f"{name} lists the .tgz of another build (its {', '.join(differ)} differ): "
                                  "the images are not compared with it")
    if listing is None:
        return None, name, problem, None
    return {rel: d for rel, d in listing.items() if "/" in rel}, name, None, None


def _resolve(opts: VerifyOptions, fmt: str, folder: Path, only: str | None) -> ShardTarget:
    cls = SHARD_FORMATS[fmt]
    stem = folder.name[:-len(cls.suffix) - 1]
    manifest, manifest_note = resolve_manifest(opts.manifest, stem, "the folder's name")
    report_path = folder.parent / f"{stem}.json"
    report, report_problem = read_build_report(report_path)
    problems, files, how, note = [], None, None, None
    if report is not None:
        entry = section(report, "outputs").get(fmt)
        if not isinstance(entry, dict) or entry.get("folder") != folder.name:
            note = f"{report_path.name} does not describe {folder.name}/: it has no outputs.{fmt} entry for it"
        else:
            how = {**report, **entry[EARLIER]} if isinstance(entry.get(EARLIER), dict) else report
            files, problem = _entry_files(entry, folder.name, report_path.name)
            problems += [problem] if problem else []
            if only is not None and files is not None:
                files = {only: files[only]} if only in files else {}
    size = variant_size(stem, manifest.stem if manifest else None, how)
    recipe, recipe_note = build_recipe(how, report_path.name)
    sums, sums_problems = _sums(folder, only)
    listing = (None, None, None, None) if how is None else _member_list(report_path, report, how)
    return ShardTarget(opts.archive, folder, fmt, cls.ext, stem, only, manifest, manifest_note, size, how,
                       report_problem, note, recipe, recipe_note, files, sums, problems + sums_problems, *listing)
