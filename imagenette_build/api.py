"""The Python API: what the command line does, as functions for notebooks and scripts.

    import imagenette_build as ib
    [report] = ib.build("/data/imagenet", sizes=[160], out="dist")
    result = ib.verify("dist/imagenette2-160.tgz")
    folder = ib.extract("dist/imagenette2-160.tgz", into="data")

Options are the command's, as keyword arguments; each function returns what the command prints
with --json (plain dicts). Errors are exceptions, never an exit: `UserError` (a bad argument or
input file: the command's exit code 2) and its subclass `DataError` (the data or the run failed:
exit code 1); a `KeyboardInterrupt` ends a build as it does the command (temporary files removed).
The command line calls these same functions and only parses and prints.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .errors import DataError, UserError
from .limits import MAX_SIZE, size_out_of_range
from .progress import Progress

__all__ = ["build", "verify", "extract", "preview", "compare", "UserError", "DataError"]


def _sizes(sizes: Iterable[int | str | None]) -> tuple[int | None, ...]:
    out = []
    for s in sizes:
        if s is None or str(s).lower() == "full":
            out.append(None)
        elif isinstance(s, int) or str(s).isdigit():
            if not 1 <= int(s) <= MAX_SIZE:
                raise UserError(f"size {size_out_of_range(int(s))}")
            out.append(int(s))
        else:
            raise UserError(f"{s!r} is not a size: give pixels (like 160) or 'full'")
    if not out:
        raise UserError("give at least one size")
    return tuple(dict.fromkeys(out))


def build(imagenet: str | Path, *, manifest: str = "imagenette2", sizes: Iterable[int | str | None] = (160,),
          out: str | Path = "dist", formats: Iterable[str] = ("tgz",), jobs: int | None = None,
          backend: str = "loky", filter: str = "bicubic", quality: int = 75, rounding: str = "script",
          decode: str = "full", batch_size: int = 32, scheduler: str | None = None,
          cache: str | Path | None = None, no_cache: bool = False, keep_cache: bool = False,
          shard_bytes: int = 256 << 20, skip_broken: bool = False, dry_run: bool = False,
          quiet: bool = True, progress: Progress | None = None) -> list[dict] | dict:
    """Build a manifest's archives from a local ImageNet copy: one build report per size (with
    `dry_run`, the plan instead). `quiet=False` shows progress bars and notes on stderr (warnings
    show either way); `progress` replaces that with your own `imagenette_build.progress.Progress`."""
    from . import builder
    from .engine import BACKENDS, default_jobs
    from .options import BuildOptions
    from .formats import FORMATS
    from .transform import Recipe

    formats = tuple(dict.fromkeys(formats)) or ("tgz",)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise UserError(f"unknown format {unknown[0]!r}: give {', '.join(FORMATS)}")
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}: give {', '.join(BACKENDS)}")
    if cache is not None and no_cache:
        raise UserError("give cache or no_cache, not both")
    try:
        recipe = Recipe(filter=filter, quality=quality, rounding=rounding, decode=decode)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    imagenet, sizes = Path(imagenet), _sizes(sizes)
    progress = progress or Progress(quiet)
    if scheduler and not dry_run and any(s is not None for s in sizes):
        imagenet = _check_cluster(scheduler, imagenet, progress)  # (full size alone never goes to the cluster)
    opts = BuildOptions(imagenet=imagenet, manifest=str(manifest), sizes=sizes, out=Path(out),
                        jobs=jobs or default_jobs(), backend=backend, recipe=recipe, batch_size=batch_size,
                        scheduler=scheduler, use_cache=not no_cache,
                        cache=Path(cache) if cache is not None else None, skip_broken=skip_broken,
                        formats=formats, keep_cache=keep_cache, shard_bytes=shard_bytes)
    plan = builder.prepare(opts, progress)
    if dry_run:
        return builder.dry_run_summary(plan, opts)
    return builder.build(opts, plan, progress)


def _check_cluster(scheduler: str, imagenet: Path, progress: Progress) -> Path:
    """Fail fast, before the scan: the cluster answers and its workers can do the work. Returns
    the ImageNet folder as an absolute path: the workers open the files by path."""
    from .engine import check_scheduler

    imagenet = imagenet.absolute()
    must_see = [("--imagenet", imagenet)] if imagenet.exists() else []  # else the scan says it
    cluster = check_scheduler(scheduler, must_see)
    progress.note(f"cluster {scheduler}: {cluster['workers']} workers, {cluster['threads']} threads")
    return imagenet


def verify(archive: str | Path, *, manifest: str | None = None, imagenet: str | Path | None = None,
           strict: bool = False, jobs: int | None = None, recipe_sample: int = 20, quiet: bool = True) -> dict:
    """Check an archive (or a parquet or WebDataset output folder, or one shard) level by level;
    the report (`passed`, and each level's findings)."""
    return verify_report(archive, manifest=manifest, imagenet=imagenet, strict=strict, jobs=jobs,
                         recipe_sample=recipe_sample, quiet=quiet).to_json()


def verify_report(archive: str | Path, *, manifest: str | None = None, imagenet: str | Path | None = None,
                  strict: bool = False, jobs: int | None = None, recipe_sample: int = 20, quiet: bool = True):
    """`verify`, as the report object (`verifier.Report`: `.passed`, `.lines()`, `.to_json()`)."""
    from .engine import default_jobs
    from .verifier import RecipeGrid, VerifyOptions
    from .verifier import verify as run_verify

    return run_verify(VerifyOptions(archive=Path(archive), manifest=manifest,
                                    imagenet=Path(imagenet) if imagenet is not None else None, strict=strict,
                                    jobs=jobs or default_jobs(), quiet=quiet, grid=RecipeGrid(sample=recipe_sample)))


def extract(archive: str | Path, *, into: str | Path = ".", force: bool = False, quiet: bool = True) -> dict:
    """Check an archive and write `<into>/<stem>/` as `tar xzf` would; what was written and the
    one-line load commands of each library (`extract.extract`)."""
    from .extractor import extract as run_extract

    return run_extract(Path(archive), Path(into), force=force, quiet=quiet)


def compare(a: str | Path, b: str | Path, *, quiet: bool = True) -> dict:
    """Do two archives (or extracted folders, or member lists) hold the same images? Counts and
    names of identical, differing and one-sided members; `same_images`."""
    return compare_report(a, b, quiet=quiet).to_json()


def compare_report(a: str | Path, b: str | Path, *, quiet: bool = True):
    """`compare`, as the comparison object (`.same_images`, `.lines()`, `.to_json()`)."""
    from .comparison import compare as run_compare

    return run_compare(Path(a), Path(b), Progress(quiet))


def preview(out: str | Path, *, archive: str | Path | None = None, imagenet: str | Path | None = None,
            wnids: Iterable[str] = (), manifest: str | None = None, per_class: int = 8) -> Path:
    """A PNG contact sheet (a row per class) of an archive, or of classes of an ImageNet copy."""
    from .sheets import sheet_of

    return sheet_of(Path(out), archive=Path(archive) if archive is not None else None,
                    imagenet=Path(imagenet) if imagenet is not None else None, wnids=tuple(wnids),
                    manifest=manifest, per_class=per_class)
