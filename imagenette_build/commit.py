"""Putting a size's finished outputs in place, with their build report and sums lines.

`commit` is the one order of renames that keeps every final name complete and current whenever the
process dies (docs/faults.md, "Interrupting and resuming"); `report` is what `<stem>.json` says.
"""

from __future__ import annotations

from pathlib import Path

from . import outputs, sums
from .cache import CacheStats, ImageCache
from .errors import DataError
from .formats import Output, OutputFile
from .labels import classes
from .options import BuildOptions, size_label
from .plan import Plan
from .progress import Progress
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
           stats: CacheStats | None) -> dict:
    """The build report of one size (`<stem>.json`): what was built from what, how, and its files."""
    m = plan.manifest
    counts = plan.counts()
    by_format = {o.format: o for o in writers}
    report = {
        "archive": None,
        "stem": m.archive_stem(size),
        "size": size_label(size),
        "manifest": {"name": m.name, "sha256": m.sha256, "files": m.file_hashes},
        "source": plan.found_in,
        "options": {
            "sizes": [size_label(s) for s in opts.sizes],
            "formats": list(opts.formats),
            "recipe": opts.recipe.to_json() if size is not None else "original bytes",
            "jobs": opts.jobs,
            "backend": opts.backend,
            "scheduler": opts.scheduler if any(s is not None for s in opts.sizes) else None,  # where it ran
            "batch_size": opts.batch_size,
            "mtime": mtime,
            "skip_broken": opts.skip_broken,
        },
        "images": len(plan.images),
        "counts": counts,
        # label indices of every loader (torchvision ImageFolder, HF, fastai): sorted WNID order
        "classes": [c.to_json() for c in classes(m)],
        "skipped": skipped,  # --skip-broken: listed images left out, and why
        "root_files": list(m.root_files) + ([m.noisy_labels_file] if m.noisy_labels_file else []),
        "outputs": {fmt: {**({"folder": o.final.name} if fmt != "tgz" else {}),
                          "files": [f.to_json() for f in files[fmt]], **o.describe()}
                    for fmt, o in by_format.items()},
        "fidelity": fidelity(opts.recipe) if size is not None else None,
        # Resized images reused from / added to the cache in this run (None: no cache, or full size).
        "cache": ({"dir": cache.root, **stats.to_json()} if cache is not None and stats is not None else None),
    }
    tgz = by_format.get("tgz")
    if tgz is not None:  # the archive's own fields, where verify and older tools look for them
        [f] = files["tgz"]
        described = tgz.describe()
        report.update(archive=f.path, archive_bytes=f.bytes, sha256=f.sha256, md5=f.md5,
                      md5_first_mib=described["md5_first_mib"], tar_sha256=described["tar_sha256"],
                      tar_members=described["tar_members"], members_sha256=described["members_sha256"])
    compressor = tgz.describe()["compressor"] if tgz is not None else None
    report["toolchain"] = toolchain(compressor)
    return report


def commit(writers: list[Output], files: dict[str, list[OutputFile]], report: dict, rest: list[Path],
           progress: Progress) -> None:
    """Put one size's finished outputs in place so that, whenever the process dies, every file under
    a final name is complete and current: the old sums lines, report and member list go first, then
    the outputs are renamed in (the archive, then its member list), then the report and the sums
    lines. Each step is one atomic rename, so an interrupt between any two leaves the folder
    consistent too. Called with the folder lock held.

    A failed write after the renames (a full disk) names the file that failed and what the outputs,
    complete and in place, are left without; `rest`: the outputs of this run not yet committed,
    which the error leaves unwritten."""
    out = writers[0].ctx.out
    report_path = out / f"{report['stem']}.json"
    names = [f["path"] for o in report["outputs"].values() for f in o["files"]]
    folders = [o.final.name + "/" for o in writers if o.format != "tgz"]
    sums.update_sums(out, drop=lambda name: name in names or name.startswith(tuple(folders)))
    report_path.unlink(missing_ok=True)
    tgz = next((o for o in writers if o.format == "tgz"), None)
    if tgz is not None:
        tgz.writer.final_path.with_name(report["members_sha256"]["file"]).unlink(missing_ok=True)
    progress.stage("commit-archive")
    for o in writers:
        o.commit()
    unwritten = f"; not written: {', '.join(map(str, rest))}" if rest else ""
    placed = f"{' and '.join(str(o.final) for o in writers)} {'is' if len(writers) == 1 else 'are'} complete and in place"
    if tgz is not None:
        try:
            tgz.commit_members()
        except OSError as exc:
            raise DataError(f"{tgz.info.members_file}: cannot write the member list: {exc.strerror or exc}; "
                            f"{placed}, without its member list, its report and its lines in SHA256SUMS and "
                            f"MD5SUMS (build again){unwritten}") from None
    progress.stage("commit-report")
    try:
        outputs.write_report(report_path, report)
    except OSError as exc:
        raise DataError(f"{report_path}: cannot write the build report: {exc.strerror or exc}; {placed}, without "
                        f"its report and its lines in SHA256SUMS and MD5SUMS (build again){unwritten}") from None
    progress.stage("commit-sums")
    try:
        sums.update_sums(out, add={f.path: (f.sha256, f.md5) for fs in files.values() for f in fs})
    except OSError as exc:
        failed = Path(exc.filename or out / "SHA256SUMS")
        lines = "SHA256SUMS and MD5SUMS" if failed.name == "SHA256SUMS" else failed.name
        raise DataError(f"{failed}: cannot write: {exc.strerror or exc}; {placed} with its report, without its "
                        f"line in {lines} (build again){unwritten}") from None
    outputs.sync_dir(out)
