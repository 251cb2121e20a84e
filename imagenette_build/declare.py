"""One declaration of each command's options: its name, type, default, bound and help, once.

An options class is a frozen dataclass whose fields are made with `option(...)`. From it:
- the command line: `click_params(cls)` makes the click parameters (`--flag` from the field's name,
  its click type, default, help, environment variable);
- the Python API: `parse(cls, given)` checks keyword arguments through the very same click types,
  given as the command line would spell them (`str(value)`), so both accept and refuse the same
  values, with the same words (`UserError` naming the option);
- the build report: `to_json(opts)` is the options' serialisation.
Checks that involve several options live in the class's `__post_init__`, which both paths run.

click's own types (and the few below, which are click types too) convert and bound each value:
one library for what click does well, no second copy of a range check.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

import click

from .errors import UserError
from .limits import MAX_SIZE, size_out_of_range
from .procs import JOBS_PER_CORE, default_jobs, max_jobs


@dataclass(frozen=True)
class Spec:
    """How an option is given: `flag` defaults to `--<name with dashes>`; `argument`: positional."""

    help: str
    type: click.ParamType = click.STRING
    flag: str | None = None
    short: str | None = None
    multiple: bool = False
    is_flag: bool = False
    argument: bool = False
    envvar: str | None = None
    metavar: str | None = None
    cli_default: str | None = None  # the default as the command line spells it (256M), when str() would not
    report: bool = True  # in the build report's options (`to_json`)
    to_json: Any = None  # value -> JSON, where str()/list() would not do


class PathType(click.Path):
    """A path (as `Path`); a NUL in it, which no path can hold, is a usage error (click's own
    type let os.stat's ValueError out)."""

    def convert(self, value, param, ctx):
        if "\0" in str(value):
            self.fail(f"{str(value)[:60]!r} holds a NUL character, which no path can", param, ctx)
        return super().convert(value, param, ctx)


PATH = PathType(path_type=Path)


def option(default: Any = MISSING, **spec) -> Any:
    """A declared option: a dataclass field carrying its `Spec`."""
    return field(default=default, metadata={"spec": Spec(**spec)})


def declared(cls) -> list:
    """The fields of `cls` that are options, in declaration order (the --help order)."""
    return [f for f in fields(cls) if "spec" in f.metadata]


def spec_of(f) -> Spec:
    return f.metadata["spec"]


def flag_of(f) -> str:
    s = spec_of(f)
    return f.name.upper() if s.argument else s.flag or "--" + f.name.replace("_", "-")


def _hint(f) -> str:
    """How an error names the option: the API's keyword, and the command line's flag."""
    s = spec_of(f)
    flags = " / ".join(filter(None, (flag_of(f), s.short)))
    return f"'{f.name}' ({flags})"


# ------------------------------------------------------------------------------ the command line


def click_params(cls) -> list[click.Parameter]:
    """The click parameters of `cls`'s options (a command adds its output options: --json, -q)."""
    params: list[click.Parameter] = []
    for f in declared(cls):
        s = spec_of(f)
        required = f.default is MISSING
        if s.argument:
            params.append(click.Argument([f.name], type=s.type, required=required, metavar=s.metavar))
            continue
        decls = [flag_of(f)] + ([s.short] if s.short else []) + [f.name]
        kw: dict[str, Any] = {"help": s.help, "multiple": s.multiple, "metavar": s.metavar, "envvar": s.envvar,
                              "show_envvar": bool(s.envvar)}
        if s.is_flag:
            kw.update(is_flag=True, default=False)
        else:
            kw["type"] = s.type
            if required:
                kw["required"] = True
            else:
                default = f.default
                if s.cli_default is not None:
                    default = s.cli_default
                elif s.multiple:
                    default = tuple(_cli_text(v) for v in default)
                kw["default"] = default
                kw["show_default"] = default not in (None, ())
        params.append(click.Option(decls, **kw))
    return params


def _cli_text(value) -> str:
    return "full" if value is None else str(value)


def from_cli(cls, values: dict, **internal):
    """`cls` from the values click parsed (already converted and bounded); `internal`: fields that
    are not options (quiet, ...)."""
    return cls(**{f.name: values[f.name] for f in declared(cls) if f.name in values}, **internal)


# ------------------------------------------------------------------------------ the Python API


def parse(cls, given: dict, **internal):
    """`cls` from keyword arguments, each checked as the command line checks it: unknown names,
    missing required ones, wrong values or types are a UserError naming the option."""
    known = {f.name: f for f in declared(cls)}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise UserError(f"unknown option {unknown[0]!r} (the options are: {', '.join(known)})")
    values = {}
    for name, f in known.items():
        if name in given:
            values[name] = _converted(f, given[name])
        elif f.default is MISSING:
            raise UserError(f"Missing option {_hint(f)}.")
    return cls(**values, **internal)


def _converted(f, value):
    s = spec_of(f)
    if value is None and f.default is MISSING:
        raise UserError(f"Missing option {_hint(f)}.")
    if value is None and (f.default is None or s.multiple):
        return f.default  # not given: the default
    if s.is_flag:
        if not isinstance(value, bool):
            raise UserError(f"Invalid value for {_hint(f)}: {value!r} is not True or False.")
        return value
    if s.multiple:
        items = [value] if isinstance(value, (str, int, os.PathLike)) or not isinstance(value, Iterable) else value
        return tuple(_one(f, v) for v in items)
    return _one(f, value)


def _one(f, value):
    """One value through the option's click type, given as its command-line spelling."""
    s = spec_of(f)
    if isinstance(value, os.PathLike):
        text = os.fspath(value)
    elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
        text = str(value)
    else:
        raise UserError(f"Invalid value for {_hint(f)}: {value!r} is not a valid {s.type.name.lower()}.")
    param = click.Option([flag_of(f)]) if not s.argument else click.Argument([f.name])
    try:
        return s.type.convert(text, param, None)
    except click.BadParameter as exc:
        raise UserError(f"Invalid value for {_hint(f)}: {exc.message}") from None


# ------------------------------------------------------------------------------ the report


def to_json(opts) -> dict:
    """The options as the build report records them (declared order)."""
    out = {}
    for f in declared(opts):
        s = spec_of(f)
        if not s.report:
            continue
        value = getattr(opts, f.name)
        if s.to_json is not None:
            value = s.to_json(value)
        elif isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = [str(v) if isinstance(v, Path) else v for v in value]
        out[f.name] = value
    return out


# ------------------------------------------------------------------------------ the project's types


class SizeType(click.ParamType):
    """A shortest-side size in pixels, or `full` for the original bytes (None)."""

    name = "SIZE"

    def convert(self, value, param, ctx):
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            size = value
        elif str(value).lower() == "full":
            return None
        else:
            text = str(value).strip()
            if not (text.isascii() and text.isdigit() and len(text) < 10):  # (int() took '²' and '1_0')
                self.fail(f"{value!r} is not a size: give pixels (like 160) or 'full'", param, ctx)
            size = int(text)
        if size is not None and not 1 <= size <= MAX_SIZE:
            self.fail(size_out_of_range(size), param, ctx)
        return size


def size_label(size: int | None) -> str:
    return "full" if size is None else str(size)


class ByteSize(click.ParamType):
    """A number of bytes: 4096, 64K, 256M, 1G (powers of 1024; any case, with B, i or iB after a unit,
    B after none). Anything else is a usage error, never another exception (str.isdigit took '²',
    which int() refuses; '' and 'iB' left nothing to index)."""

    name = "SIZE"
    UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    # ASCII digits only, at most 15 of them after leading zeros (int() refuses 4,301 digits; 1 TiB has 13)
    SPELLING = re.compile(r"\s*0*([0-9]{1,15})\s*(?:([KMG])I?B?|B?)\s*", re.ASCII | re.IGNORECASE)

    def convert(self, value, param, ctx):
        if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 1 << 40:
            return value
        m = self.SPELLING.fullmatch(str(value))
        size = int(m[1]) * self.UNITS[(m[2] or "").upper()] if m else 0
        if not 1 <= size <= 1 << 40:
            self.fail(f"{value!r} is not a size in bytes (like 256M, 64K; 1 byte to 1 TiB)", param, ctx)
        return size


class JobsType(click.types.IntRange):
    """Worker processes: at least 1, at most JOBS_PER_CORE per core this process may use (64
    workers on 2 cores took 2.9 GB for 240 images and were no faster)."""

    name = "integer"

    def __init__(self):
        super().__init__(min=1)

    def convert(self, value, param, ctx):
        jobs = super().convert(value, param, ctx)
        if jobs > max_jobs():
            self.fail(f"{jobs} is more than {max_jobs()} ({JOBS_PER_CORE} per core; this process may use "
                      f"{default_jobs()} cores): more workers only take memory", param, ctx)
        return jobs

