"""Levels 4 and 5 for any output (a .tgz, a folder of shards): the plan of the sources (with
--imagenet), the worker tasks' spec, the members sampled for the recipe sweep, and the pass that
sends member bytes to the workers and tallies what they find."""

from __future__ import annotations

import hashlib
import heapq
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from ..engine import ordered_map
from ..errors import UserError
from ..limits import IN_FLIGHT_BYTES_PER_JOB
from ..plan import Plan, make_plan
from ..procs import worker_setup
from ..progress import Progress
from ..sources import open_source
from ..toolchain import jpeg_problem
from .checks import CheckSpec, MemberCheck, check_batch
from .report import LevelResult
from .tally import PSNR_PASS_DB, ImageTally, SourceTally
from .target import VerifyOptions

BATCH_IMAGES = 32


def sample_members(members: Iterable[str], n: int) -> set[str]:
    """A deterministic sample: the first n members by sha256 of their path (holding n, not all)."""
    return set(heapq.nsmallest(n, members, key=lambda m: hashlib.sha256(m.encode()).hexdigest()))


def _task_bytes(task: tuple) -> int:
    batch, _ = task
    return sum(len(data) for _, data, _, _ in batch)


@dataclass
class Checking:
    """What the workers check of each image, and the tallies of levels 4 and 5. A task is
    `([(name, bytes, source ref or None, sampled)], spec)` (`check_batch`)."""

    target: object  # a Target or a ShardTarget: its size, recipe and manifest
    plan: Plan | None
    spec: CheckSpec
    sample: set[str]
    images: ImageTally
    sources: SourceTally | None

    @classmethod
    def of(cls, target, opts: VerifyOptions) -> Checking:
        plan = None
        if opts.imagenet is not None:
            if target.manifest is None:
                raise UserError(f"--imagenet needs the archive's manifest: {target.manifest_note}; give --manifest")
            plan = make_plan(target.manifest, open_source(opts.imagenet), Progress(opts.quiet))
        sweeping = plan is not None and target.size is not None and opts.grid.sample > 0
        grid = opts.grid.recipes(target.recipe) if sweeping else ()
        sample = sample_members(plan.images.members(), opts.grid.sample) if sweeping else set()
        exact = target.recipe.published and jpeg_problem() is None
        sources = SourceTally(plan, target.size, PSNR_PASS_DB, grid, exact) if plan else None
        return cls(target, plan, CheckSpec(target.size, target.recipe, grid), sample, ImageTally(target.size), sources)

    def item(self, name: str, data: bytes, rel: str | None) -> tuple:
        """The task item of one image: `rel`, its path below the top folder, places it in the plan."""
        planned = self.plan.images.find(rel) if self.plan is not None and rel is not None else None
        return name, data, planned.ref if planned else None, rel in self.sample

    def expected_images(self) -> int | None:
        """How many images the manifest's list or the plan expects (a progress bar's total)."""
        if self.plan is not None:
            return len(self.plan.images) + len(self.plan.missing)
        manifest = self.target.manifest
        if manifest is not None and manifest.split.policy == "files":
            return len(manifest.listed_images())
        return None

    def run(self, tasks: Iterator[tuple], jobs: int, bar, rel_of: Callable[[MemberCheck], str]) -> None:
        """Every task through the workers, in bytes bounded in flight; `rel_of`: a result's path
        below the top folder (what the plan knows it by)."""
        # Workers watch this process as a build's do: after a kill -9 of verify they end too.
        watch = (worker_setup, (os.getpid(), True))
        in_flight = (IN_FLIGHT_BYTES_PER_JOB * jobs, _task_bytes)
        for results in ordered_map(check_batch, tasks, jobs, "loky", initializer=watch, window_bytes=in_flight):
            for r in results:
                self.images.add(r)
                if self.sources is not None:
                    self.sources.add(r, rel_of(r))
            bar.update(len(results))

    def levels(self, complete: bool) -> list[LevelResult]:
        """Level 4, and level 5 with --imagenet; `complete`: every image was read."""
        levels = [self.images.level(complete)]
        if self.sources is not None:
            levels.append(self.sources.level())
            problem = jpeg_problem()
            if problem and self.target.recipe.published and self.target.size is not None:
                levels[-1].notes.append(f"compared by PSNR, not byte for byte: {problem}")
        return levels
