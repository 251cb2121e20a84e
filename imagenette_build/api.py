"""The Python API: what the command line does, as functions for notebooks and scripts.

    import imagenette_build as ib
    [report] = ib.build("/data/imagenet", sizes=[160], out="dist")
    result = ib.verify("dist/imagenette2-160.tgz")
    folder = ib.extract("dist/imagenette2-160.tgz", into="data")

Options are the command's, as keyword arguments named as the options are declared
(`options.BuildOptions`, `verifier.VerifyOptions`, `extractor.ExtractOptions`,
`contactsheet.PreviewOptions`, `comparison.CompareOptions`): each is checked as the command line checks
it, by the same click types (`declare.parse`), so both accept and refuse the same values. Each
function returns what the command prints with --json (plain dicts). Errors are exceptions, never
an exit: `UserError` (a bad option or input file: the command's exit code 2) and its subclass
`DataError` (the data or the run failed: exit code 1); a `KeyboardInterrupt` ends a build as it
does the command (temporary files removed). The command line calls the same `run_*` functions
with the options it parsed; only parsing and printing differ.
"""

from __future__ import annotations

from pathlib import Path

from . import settings
from .declare import parse
from .errors import DataError, UserError
from .progress import Progress

__all__ = ["build", "verify", "extract", "preview", "compare", "UserError", "DataError"]


def _given(first_name: str, first, options: dict) -> dict:
    """The keyword arguments, with the positional one under its option's name (when given)."""
    if first is not None:
        if first_name in options:
            raise UserError(f"{first_name} given twice")
        options = {first_name: first, **options}
    return options


def read_settings() -> settings.Settings:
    """The environment, read once for this run (settings.py), and installed for the process (the
    command line's commands call this too)."""
    run = settings.Settings.from_environ()
    settings.install(run)
    return run


# ----------------------------------------------------------------------------------------- build


def build(imagenet: str | Path | None = None, /, *, quiet: bool = True, progress: Progress | None = None,
          **options) -> list[dict] | dict:
    """Build a manifest's archives from a local ImageNet copy: one build report per size (with
    `dry_run=True`, the plan instead). Options: those of `imagenette-build build`, by their names in
    `options.BuildOptions` (`manifest`, `sizes`, `out`, `formats`, `jobs`, `filter`, `no_cache`,
    `shard_size`, `skip_broken`, `dry_run`, ...). `quiet=False` shows progress bars and notes on
    stderr (warnings show either way); `progress` replaces that with your own `Progress`."""
    from .options import BuildOptions

    opts = parse(BuildOptions, _given("imagenet", imagenet, options), settings=read_settings())
    return run_build(opts, progress or Progress(quiet))


def run_build(opts, progress: Progress) -> list[dict] | dict:
    """The build of `opts` (a `BuildOptions`), as `build` and the command line run it."""
    from . import builder
    from .imagepass import start_workers
    from .plan import make_plan

    settings.install(opts.settings)
    if opts.scheduler and not opts.dry_run and opts.resizes:  # (full size alone never goes to the cluster)
        opts = opts.on_cluster(_check_cluster(opts.scheduler, opts.imagenet, progress))
    inputs = builder.open_inputs(opts)
    if opts.dry_run:
        return builder.dry_run_summary(make_plan(*inputs, progress), opts)
    with start_workers(opts) as workers:  # (they start while the scan and the plan run)
        return builder.build(opts, make_plan(*inputs, progress), progress, workers)


def _check_cluster(scheduler: str, imagenet: Path, progress: Progress) -> Path:
    """Fail fast, before the scan: the cluster answers and its workers can do the work. Returns
    the ImageNet folder as an absolute path: the workers open the files by path."""
    from .engine import check_scheduler

    imagenet = imagenet.absolute()
    must_see = [("--imagenet", imagenet)] if imagenet.exists() else []  # else the scan says it
    cluster = check_scheduler(scheduler, must_see)
    progress.note(f"cluster {scheduler}: {cluster['workers']} workers, {cluster['threads']} threads")
    return imagenet


# ------------------------------------------------------------------------------ reading archives


def verify(archive: str | Path | None = None, /, *, quiet: bool = True, **options) -> dict:
    """Check an archive (or a parquet or WebDataset output folder, or one shard) level by level;
    the report (`passed`, and each level's findings). Options: `manifest`, `imagenet`, `strict`,
    `jobs`, `recipe_sample` (`verifier.VerifyOptions`)."""
    return verify_report(archive, quiet=quiet, **options).to_json()


def verify_report(archive: str | Path | None = None, /, *, quiet: bool = True, **options):
    """`verify`, as the report object (`verifier.Report`: `.passed`, `.lines()`, `.to_json()`)."""
    from .verifier import VerifyOptions
    from .verifier import check

    read_settings()
    return check(parse(VerifyOptions, _given("archive", archive, options), quiet=quiet))


def extract(archive: str | Path | None = None, /, *, quiet: bool = True, **options) -> dict:
    """Check an archive and write `<into>/<stem>/` as `tar xzf` would; what was written and the
    one-line load commands of each library. Options: `into`, `force` (`extractor.ExtractOptions`)."""
    from .extractor import ExtractOptions
    from .extractor import extract as run_extract

    read_settings()
    return run_extract(parse(ExtractOptions, _given("archive", archive, options)), quiet=quiet)


def compare(a: str | Path | None = None, b: str | Path | None = None, /, *, quiet: bool = True) -> dict:
    """Do two archives (or extracted folders, or member lists) hold the same images? Counts and
    names of identical, differing and one-sided members; `same_images`."""
    return compare_report(a, b, quiet=quiet).to_json()


def compare_report(a: str | Path | None = None, b: str | Path | None = None, /, *, quiet: bool = True):
    """`compare`, as the comparison object (`.same_images`, `.lines()`, `.to_json()`)."""
    from .comparison import CompareOptions
    from .comparison import compare as run_compare

    read_settings()
    given = {k: v for k, v in (("a", a), ("b", b)) if v is not None}
    return run_compare(parse(CompareOptions, given), Progress(quiet))


def preview(out: str | Path | None = None, /, **options) -> Path:
    """A PNG contact sheet (a row per class) of an archive, or of classes of an ImageNet copy.
    Options: `archive`, `imagenet`, `wnids`, `manifest`, `per_class` (`contactsheet.PreviewOptions`)."""
    from .contactsheet import PreviewOptions, sheet_of

    read_settings()
    return sheet_of(parse(PreviewOptions, _given("out", out, options)))
