"""One declaration of each command's options: the command line is made from it and the Python API
checks through it, so both accept and refuse the same values (walked here option by option, with
fixed and generated spellings), name the option the same way, and the report serialises it."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import click
import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagenette_build import cli, declare
from imagenette_build.comparison import CompareOptions
from imagenette_build.declare import declared, flag_of, spec_of
from imagenette_build.errors import UserError
from imagenette_build.extractor import ExtractOptions
from imagenette_build.options import BuildOptions
from imagenette_build.settings import Settings
from imagenette_build.contactsheet import PreviewOptions
from imagenette_build.verifier import VerifyOptions

COMMANDS = {"build": BuildOptions, "verify": VerifyOptions, "extract": ExtractOptions, "preview": PreviewOptions,
            "compare": CompareOptions}
# What every command needs besides the option tried: (command-line arguments, API keyword arguments)
BASE = {"build": (["--imagenet", "in"], {"imagenet": "in"}), "verify": (["a.tgz"], {"archive": "a.tgz"}),
        "extract": (["a.tgz"], {"archive": "a.tgz"}), "preview": (["-o", "s.png", "a.tgz"],
                                                                   {"out": "s.png", "archive": "a.tgz"}),
        "compare": (["a", "b"], {"a": "a", "b": "b"})}
SPELLINGS = ["", " ", "0", "1", "2", "3", "-1", "1.5", "75", "100", "101", "160", "full", "FULL", "8192", "8193",
             "256M", "64K", "1G", "2T", "abc", "nan", "inf", "²", "1_0", "True", "bicubic", "lanczos", "loky",
             "threading", "tgz", "parquet", "webdataset", "script", "scaled", "/tmp/x", "x y", "n01440764",
             "imagenette2", "tcp://head:8786"]
INTERNAL = {"build": {"settings": Settings()}}


def _cli(command: str, args: list[str]):
    """What the command line makes of `args` (click's parsing, then the options made from it, as
    the command's callback does): (params, None) or (None, the error's message)."""
    cmd = cli.cli.commands[command]
    try:
        ctx = cmd.make_context(command, list(args), obj={})
        declare.from_cli(COMMANDS[command], ctx.params, **INTERNAL.get(command, {}))
    except click.UsageError as exc:
        return None, exc.message
    except UserError as exc:
        return None, str(exc)
    return ctx.params, None


def _api(command: str, given: dict):
    try:
        return declare.parse(COMMANDS[command], given, **INTERNAL.get(command, {})), None
    except UserError as exc:
        return None, str(exc)


def _cases():
    for command, cls in COMMANDS.items():
        for f in declared(cls):
            if not spec_of(f).is_flag and not spec_of(f).argument:
                yield command, f.name


@pytest.mark.parametrize("command,name", list(_cases()))
def test_the_command_line_and_the_api_accept_and_refuse_the_same_values(command, name):
    f = next(f for f in declared(COMMANDS[command]) if f.name == name)
    cli_args, api_args = BASE[command] if (command, name) != ("preview", "imagenet") else (["-o", "s.png"],
                                                                                            {"out": "s.png"})
    accepted = 0
    for text in SPELLINGS:
        params, cli_error = _cli(command, [*cli_args, flag_of(f), text])
        opts, api_error = _api(command, {**api_args, name: text})
        assert (cli_error is None) == (api_error is None), (name, text, cli_error, api_error)
        if cli_error is None:
            accepted += 1
            value = getattr(opts, name)
            assert value == (params[name] if not spec_of(f).multiple else tuple(params[name])) or \
                (name == "jobs" and params[name] is None), (name, text)
        else:  # the same words, the option named for each
            assert api_error.endswith(cli_error.split(": ", 1)[-1]), (cli_error, api_error)
            assert f"'{name}'" in api_error or not api_error.startswith("Invalid value"), api_error
    assert accepted, f"{name}: no spelling accepted"


@pytest.mark.parametrize("command,name", list(_cases()))
@given(st.text(max_size=12))
def test_generated_spellings_too(command, name, text):
    f = next(f for f in declared(COMMANDS[command]) if f.name == name)
    cli_args, api_args = BASE[command]
    if text.startswith("-"):  # the command line would take it for an option
        return
    _, cli_error = _cli(command, [*cli_args, flag_of(f), text])
    _, api_error = _api(command, {**api_args, name: text})
    assert (cli_error is None) == (api_error is None), (name, text, cli_error, api_error)


@pytest.mark.parametrize("command", COMMANDS)
def test_flags_are_true_or_false_and_required_options_are_required(command):
    cls = COMMANDS[command]
    cli_args, api_args = BASE[command]
    for f in declared(cls):
        if spec_of(f).is_flag:
            assert _api(command, {**api_args, f.name: True})[1] is None
            for wrong in ("yes", 1, None, "True"):
                assert f"'{f.name}'" in (_api(command, {**api_args, f.name: wrong})[1] or ""), (f.name, wrong)
            assert _cli(command, [*cli_args, flag_of(f)])[1] is None
        if f.default is declare.MISSING and not spec_of(f).argument:
            without = {k: v for k, v in api_args.items() if k != f.name}
            assert _api(command, without)[1] == f"Missing option '{f.name}' ({flag_of(f)}{' / ' + spec_of(f).short if spec_of(f).short else ''})."
    assert "unknown option 'bogus'" in _api(command, {**api_args, "bogus": 1})[1]


def test_values_of_other_types_are_refused_with_the_option_named():
    for wrong in ([1, 2], {"a": 1}, 2.5, True, object()):
        _, error = _api("build", {"imagenet": "in", "jobs": wrong})
        assert error and error.startswith("Invalid value for 'jobs' (--jobs / -j): "), (wrong, error)
    assert _api("build", {"imagenet": "in", "sizes": 160})[0].sizes == (160,)
    assert _api("build", {"imagenet": "in", "sizes": "160"})[0].sizes == (160,)  # one size, not '1', '6', '0'
    assert _api("build", {"imagenet": "in", "sizes": [160, "full", 160]})[0].sizes == (160, None)
    assert _api("build", {"imagenet": None})[1] == "Missing option 'imagenet' (--imagenet)."
    assert _api("extract", {"archive": "a.tgz", "into": None})[1].startswith("Invalid value for 'into' (--into)")
    assert _api("build", {"imagenet": "in", "cache": "c", "no_cache": True})[1] == "give --cache DIR or --no-cache, not both"


def test_the_report_serialises_every_option_once():
    opts = declare.parse(BuildOptions, {"imagenet": "in", "sizes": [160, "full"], "shard_size": "1M"},
                         settings=Settings())
    serialised = declare.to_json(opts)
    assert list(serialised) == [f.name for f in declared(BuildOptions) if spec_of(f).report]
    assert serialised["sizes"] == ["160", "full"] and serialised["shard_size"] == 1 << 20
    assert serialised["imagenet"] == "in" and serialised["out"] == "dist"
    assert "dry_run" not in serialised and "settings" not in serialised


def test_every_option_is_on_the_command_line_and_nothing_else():
    for command, cls in COMMANDS.items():
        params = {p.name for p in cli.cli.commands[command].params} - {"as_json", "quiet", "help"}
        assert params == {f.name for f in declared(cls)}, command
        assert {f.name for f in fields(cls)} >= params
    assert Path(BuildOptions.__module__.replace(".", "/")).name == "options"
