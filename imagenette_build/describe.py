"""The documents of a build's outputs: the dataset card (`card`), Croissant metadata (`croissant`)
and the contact sheet (`sheet`), made from what the build knows (its report, plan and files) and
handed to each output to write beside its files (`Output.document_names`, `add_documents`).

Every document is a function of the build's inputs: no path of this machine, no --jobs, no date but
the build's own (SOURCE_DATE_EPOCH, the members' modification time), and, of the toolchain, only
what is the same with either Pillow flavour (the resized bytes are the same with both).
"""

from __future__ import annotations

import re
import shlex
from datetime import datetime, timezone
from pathlib import PurePosixPath

from . import card, croissant
from .formats import FORMATS, SHARD_BYTES, Output, OutputFile
from .labels import classes
from .manifest import builtin_names
from .plan import Plan
from .sheet import BuildSheet
from .transform import Recipe

_SHARD = re.compile(r"(?P<split>.+)-\d{5,}-of-\d{5,}\.[a-z]+")
# resampling options of the command line, with the recipe field each sets
_RECIPE_FLAGS = ("filter", "quality", "rounding", "decode")


def command(report: dict, fmt: str) -> str:
    """The command that builds this output from a copy of ImageNet (its path left to the reader)."""
    opts = report["options"]
    given = opts["manifest"]
    manifest = given if given in builtin_names() else PurePosixPath(given).name
    parts = ["imagenette-build", "build", "--imagenet", "/path/to/imagenet", "--manifest", manifest,
             "--size", report["size"], "--format", fmt]
    default = Recipe()
    for flag in _RECIPE_FLAGS:
        if report["size"] != "full" and opts[flag] != getattr(default, flag):
            parts += [f"--{flag}", str(opts[flag])]
    if FORMATS[fmt].folder and opts.get("shard_size") not in (None, SHARD_BYTES):
        parts += ["--shard-size", str(opts["shard_size"])]
    if opts.get("skip_broken"):
        parts.append("--skip-broken")
    return " ".join(shlex.quote(str(p)) for p in parts)


def _toolchain(report: dict) -> dict:
    """What made the bytes, as it is with either Pillow flavour and any libjpeg-turbo (the report's
    `toolchain` has every version)."""
    tools = report.get("toolchain") or {}
    jpeg = tools.get("libjpeg") or ""
    return {"imagenette_build": tools.get("imagenette_build"),
            # libjpeg-turbo's versions decode and encode alike (toolchain.jpeg_problem); IJG's do not
            "libjpeg": "libjpeg-turbo" if jpeg.startswith("libjpeg-turbo") else jpeg,
            "resampler": "pillow-simd's resampling arithmetic (pillow-simd's own or imagenette-build's port: "
                         "the same bytes)" if report["size"] != "full" else None}


def _files(output: Output, files: list[OutputFile], splits: list[str]) -> dict[str, list[dict]]:
    """{split: [{"path", "bytes", "sha256"}]}, paths relative to the folder the card is in."""
    if not output.folder:
        archive = files[0]  # (its provenance follows)
        return {splits[0] if splits else "train": [{"path": archive.path, "bytes": archive.bytes,
                                                    "sha256": archive.sha256}]}
    by_split: dict[str, list[dict]] = {}
    for f in files:
        name = f.path.partition("/")[2]
        m = _SHARD.fullmatch(name)
        by_split.setdefault(m["split"] if m else "", []).append({"path": name, "bytes": f.bytes, "sha256": f.sha256})
    return {s: by_split[s] for s in splits + sorted(set(by_split) - set(splits)) if s in by_split}


def card_info(plan: Plan, report: dict, output: Output, files: list[OutputFile], preview: bool) -> dict:
    """The `info` of `card.card_markdown` and `croissant.croissant_jsonld` (card.py says its keys)."""
    fmt = output.format
    entry = report["outputs"][fmt]
    m = plan.manifest
    date = datetime.fromtimestamp(report["settings"]["mtime"], timezone.utc).date().isoformat()
    docs = output.document_names(report["stem"])
    return {
        "stem": report["stem"],
        "manifest": {"name": m.name, "description": m.description or f"{m.name}: a subset of ImageNet.",
                     "sha256": m.sha256},
        "size": report["size"],
        "recipe": report["options"]["recipe"],
        "fidelity": report.get("fidelity"),
        "toolchain": _toolchain(report),
        "command": command(report, fmt),
        "classes": report["classes"],
        "counts": report["counts"],
        "format": fmt,
        "columns": entry.get("columns", []),
        "files": _files(output, files, list(report["counts"])),
        "leakage": report["leakage"],
        "duplicates": report.get("duplicates"),
        "preview": PurePosixPath(docs["preview"]).name if preview and "preview" in docs else None,
        "date": date,
        # Croissant's `version`: of the tool that made the bytes (the manifest's sha256 is on the card)
        "version": (report.get("toolchain") or {}).get("imagenette_build"),
    }


def documents(plan: Plan, report: dict, output: Output, files: list[OutputFile], sheet_png: bytes | None) -> dict:
    """The bytes of each document `output` carries: {kind: bytes}."""
    kinds = output.document_names(report["stem"])
    info = card_info(plan, report, output, files, sheet_png is not None)
    out = {}
    if "card" in kinds:
        out["card"] = card.card_markdown(info).encode("utf-8")
    if "croissant" in kinds:
        out["croissant"] = croissant.dumps(croissant.croissant_jsonld(info)).encode("utf-8")
    if "preview" in kinds and sheet_png is not None:
        out["preview"] = sheet_png
    return out


def contact_sheets(plan: Plan, writers: dict[int | None, list[Output]]) -> dict[int | None, BuildSheet]:
    """A contact sheet for each size of which an output carries one, to be handed every image."""
    listed = [(c.wnid, c.name) for c in classes(plan.manifest)]
    # (a resized member's bytes are kept until the sheet is drawn; a full-size one is a source's
    # bytes, of any size: its thumbnail is made at once)
    return {size: BuildSheet(listed, later=size is not None) for size, outs in writers.items()
            if any("preview" in o.document_names(o.ctx.stem) for o in outs)}


def add_documents(plan: Plan, report: dict, writers: list[Output], files: dict[str, list[OutputFile]],
                  sheet: BuildSheet | None) -> None:
    """Each output of one size writes its documents (under temporary names), which join its
    `files`; `report`: the size's report before them."""
    png = sheet.png() if sheet is not None else None
    for o in writers:
        files[o.format] = files[o.format] + o.add_documents(documents(plan, report, o, files[o.format], png))
