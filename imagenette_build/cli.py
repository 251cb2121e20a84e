"""The command line: parses options and calls the stages. No dataset logic lives here."""

from __future__ import annotations

import json
import os
import select
import signal
import sys
from contextlib import contextmanager

import click

from ._version import __version__
from . import api, leakage, procs
from .cli_design import DESIGN_COMMANDS
from .comparison import CompareOptions
from .declare import click_params, from_cli
from .errors import EXIT_INTERRUPTED, EXIT_PIPE_CLOSED, EXIT_TERMINATED, EXIT_USAGE, PipeClosed, UserError
from .extractor import ExtractOptions
from .options import BuildOptions
from .progress import Progress
from .toolchain import libjpeg_version, pillow_description, resampler_description
from .verifier import VerifyOptions

PROG = "imagenette-build"


def _reader_gone(*files) -> bool:
    """Whether one of these files is a pipe (or socket) whose reader has closed it: poll(2) then
    reports an error on its write end. (An EPIPE from any other pipe, to a worker say, is not one.)"""
    for f in files:
        try:
            poller = select.poll()
            poller.register(f.fileno(), 0)
            if any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0)):
                return True
        except (AttributeError, OSError, ValueError):  # (no descriptor: a test's StringIO)
            pass
    return False


@contextmanager
def _closed_pipe_is_no_failure():
    """A BrokenPipeError of stdout or stderr (click.echo in a command) as a `PipeClosed`: click's
    main would make any EPIPE OSError exit 1, the code of a failed verify level."""
    try:
        yield
    except BrokenPipeError as exc:
        if not _reader_gone(sys.stdout, sys.stderr):
            raise
        raise PipeClosed() from exc


class DefaultGroup(click.Group):
    """`imagenette-build --imagenet ...` runs `build`: the build is the default command. A closed
    stdout or stderr, in parsing (--help) or in a command, is a `PipeClosed`."""

    def make_context(self, *args, **kwargs):
        with _closed_pipe_is_no_failure():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx):
        with _closed_pipe_is_no_failure():
            return super().invoke(ctx)

    def parse_args(self, ctx, args):
        if not args:
            click.echo(ctx.get_help())
            ctx.exit(0)
        if args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args = ["build", *args]
        return super().parse_args(ctx, args)


def _version_message() -> str:
    return (f"{PROG} {__version__} ({pillow_description()}, {libjpeg_version()}; "
            f"resampling: {resampler_description()})")


def _print_version(ctx, _param, value):
    if value and not ctx.resilient_parsing:
        click.echo(_version_message())
        ctx.exit(0)


@click.group(cls=DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Print the version, the Pillow flavour, libjpeg and the resampler in use, then exit.")
def cli():
    """Regenerate Imagenette, Imagewoof and new ImageNet subsets from a local ImageNet copy.

    With no command, `build` runs:

    \b
      imagenette-build --imagenet /data/imagenet --size 160 --out dist/
      imagenette-build --imagenet /data/imagenet --size 160 --size 320 --size full
      imagenette-build --imagenet /data/imagenet --manifest imagewoof2 --size 320
      imagenette-build sample-imagenet /tmp/fake-imagenet     # synthetic data to try it on

    Run `imagenette-build COMMAND --help` for each command's options.
    """


for _command in DESIGN_COMMANDS:  # sample-imagenet, classes, new-manifest, preview (cli_design)
    cli.add_command(_command)


@cli.command("build", params=click_params(BuildOptions))
@click.option("--json", "as_json", is_flag=True, help="Print the build reports (or the plan) as JSON on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or messages; errors only.")
def build_command(as_json, quiet, **values):
    """Build the archives of a manifest from a local ImageNet copy.

    \b
    Examples:
      imagenette-build build --imagenet /data/imagenet --size 160 --out dist/
      imagenette-build build --imagenet /data/imagenet --size full --dry-run
      imagenette-build build --imagenet ~/kaggle-imagenet --manifest my.toml --size 64 --jobs 8
      imagenette-build build --imagenet /data/imagenet --size 160 --format tgz --format parquet

    Writes dist/<stem>-<size>.tgz (dist/<stem>.tgz for full; with --format parquet or webdataset
    the folders dist/<stem>-<size>-parquet/ and -wds/), adds their lines to dist/SHA256SUMS and
    dist/MD5SUMS, and writes the build report dist/<stem>-<size>.json and the sha256 of every
    member, dist/<stem>-<size>.members.sha256. The default recipe is the published one
    (fastai-2018): with the same ImageNet files, every image is byte-identical to the published
    archives'; --filter, --quality, --rounding and --decode depart from it.
    Exit codes: 0 done, 1 missing or unreadable images or a failed write or a cluster that failed
    during the build, 2 usage error (also: Dask not installed, no scheduler at --scheduler),
    130 interrupted (Ctrl-C), 141 the output's reader went away (| head), 143 terminated
    (SIGTERM); nothing is left half-written.
    """
    opts = from_cli(BuildOptions, values, settings=api.read_settings())
    result = api.run_build(opts, click.get_current_context().obj["progress"](quiet, results=not as_json))
    if opts.dry_run and not as_json:
        describe_plan(result, click.echo)
    elif as_json:
        click.echo(json.dumps(result if opts.dry_run or len(result) > 1 else result[0], indent=2))


@cli.command("verify", params=click_params(VerifyOptions))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def verify_command(as_json, quiet, **values):
    """Check an archive level by level: identity (hashes against the published uploads and the
    sums and report beside it), structure (members against the manifest), members (each member's
    sha256 against the build's list and the published list), images (every member decodes, sizes),
    and with --imagenet each member against its source image. ARCHIVE may also be a parquet or
    WebDataset output folder (<stem>-parquet/, <stem>-wds/) or one shard in it.

    \b
    Examples:
      imagenette-build verify dist/imagenette2-160.tgz
      imagenette-build verify dist/imagenette2-160-parquet
      imagenette-build verify imagenette2.tgz --imagenet /data/imagenet --json
      imagenette-build verify my-64.tgz --manifest my.toml --strict

    Reads the archive as a stream; never extracts or writes anything.
    Exit codes: 0 every level passed, 1 a level failed, 2 usage or I/O error, 141 the output's
    reader went away before the report was printed (| head): not a failed level.
    """
    from .errors import EXIT_DATA

    from .verifier import check

    api.read_settings()
    report = check(from_cli(VerifyOptions, values, quiet=quiet))
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        for line in report.lines():
            click.echo(line)
    if not report.passed:
        click.get_current_context().exit(EXIT_DATA)


@cli.command("extract", params=click_params(ExtractOptions))
@click.option("--json", "as_json", is_flag=True, help="Print what was written and the load commands as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="Errors only.")
def extract_command(as_json, quiet, **values):
    """Check an archive and write <INTO>/<stem>/ exactly as `tar xzf` would, never outside it.

    The archive is read with verify's safety rules (no links, devices, absolute paths or '..'),
    every member must lie below <stem>/, and its sha256 and md5 must match SHA256SUMS and MD5SUMS
    beside it when they have a line for it; anything wrong leaves nothing behind. Prints one-line
    load commands for torchvision, fastai, Hugging Face and tfds with the real path.

    \b
    Examples:
      imagenette-build extract dist/imagenette2-160.tgz --into data
      imagenette-build extract dist/imagenette2-160.tgz --into ~/.fastai/data
    Exit codes: 0 done, 1 a bad or unsafe archive or a failed write, 2 usage (no such file, the
    folder exists without --force), 141 the output's reader went away (| head).
    """
    from .extractor import extract

    api.read_settings()
    result = extract(from_cli(ExtractOptions, values), quiet=quiet or as_json)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    elif not quiet:
        for library, line in result["load"].items():
            click.echo(f"{library + ':':<13}{line}")


@cli.command("compare", params=click_params(CompareOptions))
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def compare_command(as_json, quiet, **values):
    """Do A and B hold the same images? Each is an archive (.tgz), an extracted folder (the
    dataset's top folder) or a member list (<stem>.members.sha256). Members are compared below
    their top folder, in any order, by sha256: tar headers, member order and gzip never matter.

    \b
    Examples:
      imagenette-build compare imagenette2-160.tgz dist/imagenette2-160.tgz
      imagenette-build compare dist/imagenette2-160.tgz data/imagenette2-160 --json
      imagenette-build compare cluster/imagewoof2-320.tgz imagewoof2-320_2019-12.sha256

    Exit codes: 0 every image member identical (none missing on either side), 1 members differ,
    are missing, or a side could not be read whole, 2 usage (no such file).
    """
    from .errors import EXIT_DATA

    from .comparison import compare

    api.read_settings()
    result = compare(from_cli(CompareOptions, values), Progress(quiet))
    click.echo(json.dumps(result.to_json(), indent=2) if as_json else "\n".join(result.lines()))
    if not result.same_images:
        click.get_current_context().exit(EXIT_DATA)


def describe_plan(summary: dict, emit) -> None:
    """The plan of a --dry-run, for people."""
    emit(f"manifest {summary['manifest']}, source {summary['source']}")
    for split, per_class in summary["counts"].items():
        emit(f"  {split}: {sum(per_class.values())} images in {sum(1 for n in per_class.values() if n)} classes")
        for wnid, n in per_class.items():
            emit(f"    {wnid} {n}")
    emit(f"  found {summary['images']} images, missing {summary['missing']}")
    for member in summary["missing_first"][:5]:
        emit(f"    missing {member}")
    for line in summary["empty_classes"]:
        emit(f"  empty class {line}")
    emit("  where the images came from (a model pretrained on ImageNet-1k has seen those from ILSVRC-2012 train):")
    for line in leakage.markdown(summary["leakage"]).splitlines():
        emit(f"    {line}")
    for path in summary["would_write"]:
        emit(f"  would write {path}")


def _silence_output() -> None:
    """The Python docs' recipe for a closed pipe (signal module, "Note on SIGPIPE"): stdout and
    stderr go to /dev/null, so that what is still buffered, and the interpreter's last flush, fail
    no more."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            os.dup2(devnull, stream.fileno())
        except (AttributeError, OSError, ValueError):  # (no descriptor: a test's StringIO)
            pass


def _say(line: str) -> None:
    """One line on stderr; when its reader has gone, none (the exit code still says what happened)."""
    try:
        click.echo(line, err=True)
    except BrokenPipeError:
        _silence_output()


def main(argv: list[str] | None = None, progress: type[Progress] = Progress) -> None:
    """The command line. `progress`: what a build reports its progress to, made with `quiet`
    (a test passes its own, to stop a build at a known point)."""
    procs.install_signal_handlers()
    try:
        code = cli.main(args=argv, prog_name=PROG, standalone_mode=False, obj={"progress": progress})
        with _closed_pipe_is_no_failure():
            sys.stdout.flush()
    except PipeClosed:  # exit as a process that SIGPIPE ends (`yes | head`): never 1, a failed level
        _silence_output()
        sys.exit(EXIT_PIPE_CLOSED)
    except click.UsageError as exc:
        hint = f" (see {PROG} {exc.ctx.command.name} --help)" if exc.ctx and exc.ctx.command.name != "cli" else ""
        _say(f"{PROG}: error: {exc.format_message()}{hint}")
        sys.exit(EXIT_USAGE)
    except UserError as exc:
        _say(f"{PROG}: error: {exc}")
        sys.exit(exc.exit_code)
    except (procs.Stopped, KeyboardInterrupt, click.Abort):
        procs.note_stopped()
        if procs.stopped_by() == signal.SIGINT and sys.stderr.isatty():
            _say("")  # after the terminal's "^C"
        if procs.stopped_by() == signal.SIGTERM:
            _say(f"{PROG}: terminated (SIGTERM); temporary files removed")
            sys.exit(EXIT_TERMINATED)
        _say(f"{PROG}: interrupted; temporary files removed")
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(code or 0)


if __name__ == "__main__":  # pragma: no cover
    main()
