"""The report: a result per level, the first few of each problem, and the text and JSON forms.

Every problem list keeps a count and its first FIRST_FEW items (`FirstFew`): a hostile archive can
hold millions of bad members. Every line of the text report goes through `printable`; JSON escapes
by itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice

from ..safepath import printable
from .target import Target  # or a shardtarget.ShardTarget: the same fields

FIRST_FEW = 5


@dataclass
class LevelResult:
    name: str
    passed: bool
    summary: str
    problems: list[str] = field(default_factory=list)  # why it failed, the first few named
    notes: list[str] = field(default_factory=list)  # informational
    data: dict = field(default_factory=dict)  # the numbers, for --json


class FirstFew:
    """A count and the first FIRST_FEW items: all a problem line shows, in bounded memory (a hostile
    archive can hold millions of bad members)."""

    def __init__(self) -> None:
        self.count = 0
        self.first: list[str] = []

    def append(self, item: str) -> None:
        self.count += 1
        if len(self.first) < FIRST_FEW:
            self.first.append(item)

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[str]:
        return iter(self.first)


def first_few(items: Iterable[str]) -> str:
    items = items if isinstance(items, FirstFew) else list(items)
    shown = ", ".join(islice(items, FIRST_FEW))
    return shown + (f", ... ({len(items) - FIRST_FEW} more)" if len(items) > FIRST_FEW else "")


def counted(label: str, items: list[str] | FirstFew) -> str:
    return f"{len(items)} {label}: {first_few(items)}"


def counted_below(top: str, groups: Iterable[tuple[str, list[str]]]) -> list[str]:
    """A `counted` line per group that is not empty, its paths named below the top folder."""
    return [counted(label, [f"{top}/{rel}" for rel in rels]) for label, rels in groups if rels]


@dataclass
class Report:
    target: Target
    levels: list[LevelResult]

    @property
    def passed(self) -> bool:
        return all(level.passed for level in self.levels)

    def to_json(self) -> dict:
        t = self.target
        return {
            "archive": str(t.path),
            "format": t.format,
            "manifest": t.manifest.name if t.manifest else None,
            "manifest_from": t.manifest_note,
            "size": "full" if t.size is None else t.size,
            "recipe": t.recipe.to_json(),
            "recipe_from": t.recipe_note,
            "passed": self.passed,
            "levels": [{"level": lv.name, "passed": lv.passed, "summary": lv.summary, "problems": lv.problems,
                        "notes": lv.notes, **lv.data} for lv in self.levels],
        }

    def lines(self) -> list[str]:
        """The text report, every line through `printable`."""
        return [printable(line) for line in self._lines()]

    def _lines(self) -> list[str]:
        t = self.target
        size = "full size" if t.size is None else f"{t.size} px"
        manifest = t.manifest.name if t.manifest else "none"
        out = [f"verify {t.path}: {t.what}manifest {manifest} ({t.manifest_note}), {size}"]
        for lv in self.levels:
            out.append(f"{'PASS' if lv.passed else 'FAIL'}  {lv.name:<9}  {lv.summary}")
            out += [f"      - {p}" for p in lv.problems]
            out += [f"        {n}" for n in lv.notes]
        failed = [lv.name for lv in self.levels if not lv.passed]
        out.append(f"FAILED: {', '.join(failed)}" if failed else f"passed: {len(self.levels)} levels")
        return out
