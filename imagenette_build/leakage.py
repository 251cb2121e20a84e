"""The leakage table: per split of a dataset, how many members came from ILSVRC-2012 train and how
many from ILSVRC-2012 val.

A model pretrained on ImageNet-1k has seen every ILSVRC train image: a member that came from ILSVRC
train is not new to it, whichever split of the subset holds it (imagenette2's `val/` is mostly
ILSVRC train images). The table says how much, per split, before any pixel is read.

The origin is read from the member's file name, which every reader keeps as ILSVRC-2012 names it
(the Hugging Face layouts' names are mapped back; `sources/hf_shards.py`): train images are
`<wnid>_<n>.<ext>` (`n01440764_10026.JPEG`), val images `ILSVRC2012_val_<8 digits>.<ext>`. A name of
neither kind (a renamed copy) counts as `unknown`: never guessed. The plan does not keep the
source's own split (`SourceImage.split`); the names say the same in every layout.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from .plan import Plan

TRAIN, VAL, UNKNOWN = "imagenet_train", "imagenet_val", "unknown"
ORIGINS = (TRAIN, VAL, UNKNOWN)  # the keys of every row, in this order

_TRAIN_NAME = re.compile(r"n[0-9]{8}_[0-9]+\.[A-Za-z]+")
_VAL_NAME = re.compile(r"ILSVRC2012_val_[0-9]{8}\.[A-Za-z]+")


def origin(filename: str) -> str:
    """`imagenet_train`, `imagenet_val` or `unknown`, from an ILSVRC-2012 file name (no folders)."""
    if _TRAIN_NAME.fullmatch(filename):
        return TRAIN
    if _VAL_NAME.fullmatch(filename):
        return VAL
    return UNKNOWN


def count(pairs: Iterable[tuple[str, str]], splits: Sequence[str] = ()) -> dict[str, dict[str, int]]:
    """The table from (dataset split, origin) pairs: {split: {origin: members}}, every origin of
    ORIGINS in each row. Rows: `splits` first, in that order (also when empty), then any other
    split met, sorted."""
    table = {s: dict.fromkeys(ORIGINS, 0) for s in splits}
    for split, where in pairs:
        if where not in ORIGINS:
            raise ValueError(f"unknown origin {where!r}; one of {', '.join(ORIGINS)}")
        table.setdefault(split, dict.fromkeys(ORIGINS, 0))[where] += 1
    first = list(splits)
    return {s: table[s] for s in first + sorted(set(table) - set(first))}


def of_members(members: Iterable[str], splits: Sequence[str] = ()) -> dict[str, dict[str, int]]:
    """The table of member paths `<split>/.../<file>` (a file list's `path` column, an archive's
    members below its top folder)."""
    return count(((m.split("/", 1)[0], origin(m.rpartition("/")[2])) for m in members), splits)


def leakage_table(plan: Plan) -> dict[str, dict[str, int]]:
    """The table of a plan, every split of its manifest a row: known before any image is read."""
    return of_members(plan.images.members(), plan.manifest.split.splits)


def totals(table: dict[str, dict[str, int]]) -> dict[str, int]:
    """{origin: members} over every split."""
    return {o: sum(row[o] for row in table.values()) for o in ORIGINS}


def markdown(table: dict[str, dict[str, int]]) -> str:
    """The table as Markdown, for the card and for `--dry-run` (plain text that reads as a table):
    a row per split and a total; the `unknown` column only when some member has that origin."""
    origins = [o for o in ORIGINS if o != UNKNOWN or totals(table)[UNKNOWN]]
    heads = {TRAIN: "from ILSVRC-2012 train", VAL: "from ILSVRC-2012 val", UNKNOWN: "origin unknown"}
    lines = ["| split | " + " | ".join(heads[o] for o in origins) + " | total |",
             "| --- |" + " ---: |" * (len(origins) + 1)]
    rows = list(table.items()) + [("**all**", totals(table))]
    for split, row in rows:
        n = sum(row.values())
        cells = [f"{row[o]:,} ({_share(row[o], n)})" for o in origins]
        lines.append(f"| {split} | " + " | ".join(cells) + f" | {n:,} |")
    return "\n".join(lines) + "\n"


def _share(part: int, whole: int) -> str:
    """A percentage with one decimal (never 0.0 % or 100.0 % unless exactly so)."""
    if not whole or part in (0, whole):
        return f"{100 if whole and part else 0} %"
    value = 100 * part / whole
    return f"{min(max(value, 0.1), 99.9):.1f} %"
