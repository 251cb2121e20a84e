"""Levels 4 and 5, tallied in the main process as the workers' results arrive: `ImageTally` (does
every member decode, with the right shortest side), `SourceTally` (every member against its
source, and the recipe sweep's ranking)."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from typing import NamedTuple

from ..plan import Plan
from ..transform import Recipe
from .checks import MemberCheck
from .report import FIRST_FEW, FirstFew, LevelResult, counted

# A member at least this close to its regeneration is the same image made the same way, give or
# take the toolchain. Measured on the synthetic sample: a DCT-scaled build regenerated with a full
# decode gives 41-46 dB, a member with one flipped byte about 10 dB. Neighbouring filters can clear
# it too (lanczos against bicubic: about 42 dB), which is why the recipe sweep ranks recipes.
PSNR_PASS_DB = 40.0


class ImageTally:
    """Level 4: every member decodes, and a sized variant has exactly its shortest side. A member
    larger than the build writes (limits.py) is refused from its header, not decoded."""

    def __init__(self, size: int | None):
        self.size = size
        self.checked = 0
        self.errors = FirstFew()
        self.too_large = FirstFew()
        self.wrong_size = FirstFew()
        self.modes: Counter[str] = Counter()
        self.shortest: list[int] = []  # min and max so far

    def add(self, r: MemberCheck) -> None:
        self.checked += 1
        if r.error:
            (self.too_large if r.too_large else self.errors).append(f"{r.member} ({r.error})")
            return
        self.modes[r.mode] += 1
        short = min(r.width, r.height)
        self.shortest = [min(self.shortest[0], short), max(self.shortest[1], short)] if self.shortest else [short, short]
        if self.size is not None and short != self.size:
            self.wrong_size.append(f"{r.member} ({r.width}x{r.height})")

    def level(self, stream_complete: bool) -> LevelResult:
        problems, notes = [], []
        if self.errors:
            problems.append(counted("members do not decode", self.errors))
        if self.too_large:
            problems.append(counted("members larger than the build writes (not decoded)", self.too_large))
        if self.wrong_size:
            problems.append(counted(f"members whose shortest side is not {self.size}", self.wrong_size))
        if not self.checked:
            problems.append("no images to check")
        if not stream_complete:
            notes.append("the archive (or a shard) was not read whole: only the images before the break were checked")
        modes = ", ".join(f"{m} {n}" for m, n in self.modes.most_common()) or "none"
        sides = f"shortest side {self.shortest[0]}..{self.shortest[1]} px" if self.shortest else "no sizes"
        if self.size is not None and self.shortest and not self.wrong_size:
            sides = f"shortest side {self.size} px on every image"
        decoded = self.checked - len(self.errors) - len(self.too_large)
        summary = f"{decoded} of {self.checked} decode fully; {sides}; modes {modes}"
        data = {"checked": self.checked, "decode_errors": len(self.errors), "decode_errors_first": self.errors.first,
                "too_large": len(self.too_large), "too_large_first": self.too_large.first,
                "wrong_size": len(self.wrong_size), "wrong_size_first": self.wrong_size.first,
                "modes": dict(self.modes), "shortest_side_min": self.shortest[0] if self.shortest else None,
                "shortest_side_max": self.shortest[1] if self.shortest else None, "expected_shortest_side": self.size}
        return LevelResult("images", not problems, summary, problems, notes, data)


class Compared(NamedTuple):
    psnr: float
    member: str
    max_diff: int
    note: str
    identical: bool

    def describe(self) -> str:
        extra = f", {self.note}" if self.note else ""
        return f"{self.member} ({_fmt_db(self.psnr)} dB, max diff {self.max_diff}{extra})"


def _fmt_db(psnr: float) -> str:
    return "inf" if math.isinf(psnr) else f"{psnr:.1f}"


def _json_db(psnr: float) -> float | None:
    """JSON has no infinity: null stands for identical pixels."""
    return None if math.isinf(psnr) else round(psnr, 2)


class SourceTally:
    """Level 5. Members the plan cannot place are failures only when the manifest has no file list:
    with a list, the structure level already names them as extra or misplaced.

    `exact`: sized members must regenerate byte for byte (the published recipe, on a machine whose
    JPEG library can make its bytes); otherwise they must clear `threshold` dB of PSNR."""

    def __init__(self, plan: Plan, size: int | None, threshold: float, grid: tuple[Recipe, ...],
                 exact: bool = False):
        self.plan = plan
        self.size = size
        self.threshold = threshold
        self.grid = grid
        self.exact = exact or size is None
        self.missing_sources = set(plan.missing)
        self.has_list = plan.manifest.split.policy == "files"
        self.compared: list[Compared] = []
        self.identical = 0
        self.errors = FirstFew()
        self.source_missing = FirstFew()
        self.unplaced = FirstFew()
        self.sweep: list[tuple[str, tuple[float, ...]]] = []

    def add(self, r: MemberCheck, rel: str) -> None:
        if r.error:
            return  # the images level names it
        if r.source_error:
            self.errors.append(r.source_error)
        elif r.source is not None:
            self.identical += r.source.identical
            self.compared.append(Compared(r.source.psnr, r.member, r.source.max_diff, r.source.note,
                                          r.source.identical))
            if r.sweep is not None:
                self.sweep.append((r.member, r.sweep))
        elif rel in self.missing_sources:
            self.source_missing.append(r.member)
        else:
            self.unplaced.append(r.member)

    def _bad(self) -> list[Compared]:
        """Exact: anything but the expected bytes. Otherwise: below the PSNR threshold."""
        if self.exact:
            return sorted(c for c in self.compared if not c.identical)
        return sorted(c for c in self.compared if c.psnr < self.threshold)

    def level(self) -> LevelResult:
        problems, notes = [], []
        bad = self._bad()
        full = self.size is None
        if bad:
            label = ("members differ from their source" if full else
                     "members differ from their regeneration" if self.exact else
                     f"members below {self.threshold:g} dB PSNR")
            problems.append(counted(label, [c.describe() for c in bad]))
        if self.errors:
            problems.append(counted("sources could not be read or regenerated", self.errors))
        if self.source_missing:
            problems.append(counted(f"members whose source image is missing from {self.plan.found_in}",
                                     self.source_missing))
        if self.unplaced:
            (notes if self.has_list else problems).append(counted("members with no source in the plan", self.unplaced))
        if not self.compared and not problems:
            problems.append("no member could be compared with its source")
        summary, data = self._summary()
        if not full:
            worst = [c for c in sorted(self.compared)[:FIRST_FEW] if not c.identical]
            if worst and not bad:
                notes.append("lowest PSNR: " + ", ".join(c.describe() for c in worst))
            sweep_note, data["recipe_sweep"] = self._sweep_summary()
            if sweep_note:
                notes.append(sweep_note)
        return LevelResult("source", not problems, summary, problems, notes, data)

    def _summary(self) -> tuple[str, dict]:
        n = len(self.compared)
        data = {"compared": n, "identical": self.identical, "exact": self.exact, "threshold_db": self.threshold,
                "errors": len(self.errors), "source_missing": len(self.source_missing),
                "unplaced": len(self.unplaced), "source": self.plan.found_in}
        if self.size is None:
            return f"{self.identical} of {n} members byte-identical to their source", data
        psnrs = [c.psnr for c in self.compared]
        data["worst"] = [{"member": c.member, "psnr_db": _json_db(c.psnr), "max_abs_diff": c.max_diff, "note": c.note}
                         for c in sorted(self.compared)[:FIRST_FEW]]
        if not psnrs:
            return "no member compared", data
        median, low = statistics.median(psnrs), min(psnrs)
        data.update(median_psnr_db=_json_db(median), min_psnr_db=_json_db(low))
        rule = "every image byte-identical" if self.exact else f"every image >= {self.threshold:g} dB"
        return (f"{n} members regenerated and compared: {self.identical} byte-identical, PSNR median "
                f"{_fmt_db(median)} dB, min {_fmt_db(low)} dB (pass: {rule})"), data

    def _sweep_summary(self) -> tuple[str | None, dict | None]:
        if not self.sweep or not self.grid:
            return None, None
        ranking = []
        for i, recipe in enumerate(self.grid):
            values = [psnrs[i] for _, psnrs in self.sweep]
            exact = sum(math.isinf(v) for v in values)
            ranking.append((statistics.median(values), min(values), exact, -i, recipe))
        # Highest median PSNR wins; then the highest minimum, the most exact images, grid order
        # (the build's recipe comes first, so it wins a full tie).
        ranking.sort(key=lambda row: row[:4], reverse=True)
        n = len(self.sweep)
        top = ", ".join(f"{recipe_name(r)} {_fmt_db(med)} dB ({exact}/{n} exact)"
                        for med, _, exact, _, r in ranking[:3])
        data = {"sample": [m for m, _ in self.sweep], "best": recipe_name(ranking[0][4]),
                "ranking": [{"recipe": recipe_name(r), "median_psnr_db": _json_db(med), "min_psnr_db": _json_db(low),
                             "exact": exact} for med, low, exact, _, r in ranking]}
        return f"best of {len(self.grid)} recipes on {n} sampled images, by median PSNR: {top}", data


def recipe_name(r: Recipe) -> str:
    return f"{r.filter}/{r.rounding}/q{r.quality}"
