"""Putting a size's finished outputs in place, with their build report and sums lines.

`commit` is the one order of renames that keeps every final name complete and current whenever the
process dies (docs/faults.md, "Interrupting and resuming"); `report` is what `<stem>.json` says.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path

from . import declare, safewrite, sums
from .cache import CacheStats, ImageCache
from .errors import DataError, why
from .formats import FORMATS, Output, OutputFile
from .labels import classes
from .leakage import leakage_table
from .limits import MAX_REPORT_BYTES
from .declare import size_label
from .options import BuildOptions
from .plan import Plan
from .progress import Progress
from .readfile import read_bytes
from .toolchain import jpeg_problem, toolchain
from .transform import Recipe


def fidelity(recipe: Recipe) -> dict:
    """Can this build's resized images be the published ones? The recipe must be the published one
    and the JPEG library libjpeg-turbo; `problems` says what stands in the way."""
    problems = []
    if not recipe.published:
        differs = [f"{k} {v}" for k, v in vars(recipe).items() if v != getattr(Recipe(), k)]
        problems.append(f"not the published recipe ({', '.join(differs)})")
    jpeg = jpeg_problem()
    if jpeg:
        problems.append(jpeg)
    return {"recipe": recipe.name, "published_recipe": recipe.published,
            "published_bytes_possible": not problems, "problems": problems}


def report(plan: Plan, opts: BuildOptions, size: int | None, writers: list[Output],
           files: dict[str, list[OutputFile]], mtime: int, skipped: list[dict], cache: ImageCache | None,
           stats: CacheStats | None, duplicates: dict | None = None) -> dict:
    """The build report of one size (`<stem>.json`): what was built from what, how, and its files;
    `duplicates`: what `duplicates.DuplicateFinder` found among its members (None: not looked for)."""
    m = plan.manifest
    counts = plan.counts()
    by_format = {o.format: o for o in writers}
    report = {
        "archive": None,
        "stem": m.archive_stem(size),
        "size": size_label(size),
        "manifest": {"name": m.name, "sha256": m.sha256, "files": m.file_hashes,
                     "source": m.source.to_json() if m.source else None},  # where its class list comes from
        "source": plan.found_in,
        # every option as declared (options.py), and the recipe the four recipe options make
        "options": {**declare.to_json(opts), "recipe": opts.recipe.to_json() if size is not None else "original bytes",
                    "scheduler": opts.scheduler if opts.resizes else None},  # (where it ran: full size never goes)
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts.settings).items()},
        "images": len(plan.images),
        "counts": counts,
        # per split, members from ILSVRC-2012 train and val, from their file names (docs/datasets.md)
        "leakage": leakage_table(plan),
        # label indices of every loader (torchvision ImageFolder, HF, fastai): sorted WNID order
        "classes": [c.to_json() for c in classes(m)],
        "skipped": skipped,  # --skip-broken: listed images left out, and why
        "root_files": list(m.root_files) + ([m.noisy_labels_file] if m.noisy_labels_file else []),
        "outputs": {fmt: {**({"folder": o.final.name} if o.folder else {}),
                          "files": [f.to_json() for f in files[fmt]], **o.describe()}
                    for fmt, o in by_format.items()},
        "fidelity": fidelity(opts.recipe) if size is not None else None,
        # Resized images reused from / added to the cache in this run (None: no cache, or full size).
        "cache": ({"dir": cache.root, **stats.to_json()} if cache is not None and stats is not None else None),
        "duplicates": duplicates,  # exact and near duplicates among the members (docs/datasets.md)
    }
    for fmt, entry in report["outputs"].items():
        report.update(FORMATS[fmt].top_level(entry))
    # the deflate library, where an output compresses (its bytes depend on that library's version)
    compressor = next((o.describe()["compressor"] for o in writers if "compressor" in o.describe()), None)
    report["toolchain"] = toolchain(compressor)
    return report


def final_names(out: Path, stems: Iterable[str], formats: Iterable[str]) -> list[tuple[Path, bool]]:
    """Every name a build of `formats` for `stems` puts in place, and whether it is a folder: each
    output's names, each stem's report, the sums files."""
    formats, names = list(formats), []
    for stem in stems:
        names += [(out / name, folder) for fmt in formats for name, folder in FORMATS[fmt].final_names(stem)]
        names.append((out / f"{stem}.json", False))
    return names + [(out / name, False) for name in sums.SUM_FILES]


def final_names_problem(names: Iterable[tuple[Path, bool]]) -> str | None:
    """The first final name the build may not put in place (`safewrite.final_name_problem`), if any."""
    return next((p for path, folder in names if (p := safewrite.final_name_problem(path, folder))), None)


def _earlier_report(path: Path) -> dict | None:
    """The report already at `path`, or None when there is none or it is not one (it is replaced)."""
    try:
        report = json.loads(read_bytes(path, MAX_REPORT_BYTES, "a build report", follow_symlinks=False))
    except (OSError, ValueError, RecursionError):
        return None
    return report if isinstance(report, dict) and isinstance(report.get("outputs"), dict) else None


_OUTPUT_KEYS = {"stem", "outputs", *(k for f in FORMATS.values() for k in f.top_level_fields)}
EARLIER = "earlier_build"  # in a kept output's entry: how its build differed from the one the report describes


def _how(report: dict) -> dict:
    """What a report says of how its outputs were built: all but what it says of the outputs."""
    return {k: v for k, v in report.items() if k not in _OUTPUT_KEYS}


def kept_outputs(out: Path, stem: str, rebuilt: Iterable[str], now: dict) -> dict[str, dict]:
    """The outputs of the report already at `<stem>.json` that this build does not make and that
    are still on disk as it describes them, with their lines in SHA256SUMS ({format: entry}), each
    carrying in `earlier_build` what of its own build differs from `now` (this build's report): the
    report then says how each output on disk was built, never that one kept from an earlier build
    was made with this build's options."""
    earlier = _earlier_report(out / f"{stem}.json")
    if earlier is None or earlier.get("stem") != stem:
        return {}
    listed = sums.read_sums(out / "SHA256SUMS", sums.SUM_FILES["SHA256SUMS"])
    kept, now_how = {}, _how(now)
    for fmt, entry in earlier["outputs"].items():
        if fmt not in FORMATS or fmt in rebuilt or (entry := FORMATS[fmt].still_in_place(out, stem, entry)) is None:
            continue
        if any(listed.get(f["path"]) != f["sha256"] for f in entry["files"]):
            continue  # (the sums line and the report of a file never disagree)
        how = _how(earlier)  # how the earlier report says it was built, with what its entry says differed
        if isinstance(entry.get(EARLIER), dict):
            how.update(entry[EARLIER])
        keys = list(now_how) + [k for k in how if k not in now_how]
        differs = {k: how.get(k) for k in keys if how.get(k) != now_how.get(k)}  # (None: it did not say)
        kept[fmt] = {**{k: v for k, v in entry.items() if k != EARLIER}, EARLIER: differs}
    return kept


def merged(report: dict, kept: dict[str, dict]) -> dict:
    """`report` (of this build's outputs) with the outputs kept from an earlier build."""
    merged = {**report, "outputs": {**report["outputs"], **kept}}
    for fmt, entry in kept.items():
        merged.update(FORMATS[fmt].top_level(entry))
    return merged


def _of(report: dict, placed: list[Output]) -> dict:
    """`report` as it is when only the outputs `placed` are in place."""
    formats = [o.format for o in placed]
    only = {**report, "outputs": {f: e for f, e in report["outputs"].items() if f in formats}}
    for fmt in report["outputs"]:
        if fmt not in formats:
            only.update(dict.fromkeys(FORMATS[fmt].top_level_fields))
    return only


def commit(writers: list[Output], files: dict[str, list[OutputFile]], report: dict, rest: list[Path],
           progress: Progress) -> dict:
    """Put one size's finished outputs in place so that, whenever the process dies, every file under
    a final name is complete and current; the report as written. Called with the folder lock held.

    The final names are checked again (`final_name_problem`). Then the old sums lines of the
    outputs go, and the old report is rewritten with only the outputs of an earlier build that stay
    (`kept_outputs`); the outputs are renamed in (each one's `commit`), then the report (kept and
    new outputs) and the sums lines are written. Each step is one atomic rename, so an interrupt
    between any two leaves the folder consistent too. An output that cannot be renamed in leaves
    the ones already in place with their report and sums lines, and names what is not written.

    A failed write after the renames (a full disk) names the file that failed and what the outputs,
    complete and in place, are left without; `rest`: the outputs of this run not yet committed,
    which the error leaves unwritten."""
    out, stem = writers[0].ctx.out, report["stem"]
    report_path = out / f"{stem}.json"
    unwritten = f"; not written: {', '.join(map(str, [o.final for o in writers] + rest))}"
    problem = final_names_problem(final_names(out, [stem], [o.format for o in writers]))
    if problem:
        raise DataError(problem + unwritten)
    kept = kept_outputs(out, stem, [o.format for o in writers], report)
    sums.update_sums(out, drop=lambda name: any(o.owns(stem, name) for o in writers))
    _put_report(report_path, merged(_of(report, []), kept) if kept else None)
    progress.stage("commit-archive")
    placed: list[Output] = []
    failed = None
    for o in writers:
        try:
            o.commit()
        except OSError as exc:
            where = safewrite.final_path(Path(exc.filename)) if exc.filename else o.final
            failed = f"{where}: cannot put it in place: {why(exc)}"
            break
        placed.append(o)
    unwritten = [o.final for o in writers if o not in placed] + rest
    unwritten = f"; not written: {', '.join(map(str, unwritten))}" if unwritten else ""
    if not placed:
        raise DataError(failed + unwritten)
    final = merged(_of(report, placed), kept)
    done = f"{failed}; " if failed else ""
    placed_text = (f"{' and '.join(str(o.final) for o in placed)} {'is' if len(placed) == 1 else 'are'} "
                   "complete and in place")
    progress.stage("commit-report")
    try:
        _put_report(report_path, final)
    except OSError as exc:
        raise DataError(f"{done}{report_path}: cannot write the build report: {why(exc)}; "
                        f"{placed_text}, without its report and its lines in SHA256SUMS and MD5SUMS (build again)"
                        f"{unwritten}") from None
    progress.stage("commit-sums")
    try:
        sums.update_sums(out, add={f.path: (f.sha256, f.md5) for o in placed for f in files[o.format]})
    except OSError as exc:
        failed_sums = Path(exc.filename or out / "SHA256SUMS")
        lines = "SHA256SUMS and MD5SUMS" if failed_sums.name == "SHA256SUMS" else failed_sums.name
        raise DataError(f"{done}{failed_sums}: cannot write: {why(exc)}; {placed_text} with its report, "
                        f"without its line in {lines} (build again){unwritten}") from None
    safewrite.sync_dir(out)
    if failed:
        raise DataError(f"{failed}; {placed_text} with its report and its lines in SHA256SUMS and MD5SUMS"
                        f"{unwritten}")
    return final


def _put_report(path: Path, report: dict | None) -> None:
    if report is None:
        path.unlink(missing_ok=True)
    else:
        safewrite.write_report(path, report)
