"""A build's options, declared once (`declare`): the command line's `build` is made from this
class, the Python API's `build(**options)` is checked through it, and the build report's
`options` is its serialisation. Adding an option is one field here (and its test); the stage that
uses it reads `opts.<name>`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import click

from .cache import DEFAULT_DIRNAME as DEFAULT_CACHE_DIRNAME
from .declare import PATH, ByteSize, JobsType, SizeType, option, size_label
from .engine import BACKENDS
from .errors import UserError
from .formats import FORMATS, MIN_SHARDS, SHARD_BYTES
from .limits import MAX_SIZE
from .procs import default_jobs
from .settings import SCHEDULER_ENV, Settings
from .transform import DECODES, FILTERS, ROUNDINGS, Recipe

# The build holds a window of up to 32 tasks per worker (8 for full size, ~150 kB an image): 256
# images a task is ~300 MB of full-size originals per worker; a larger task only adds memory.
MAX_BATCH_SIZE = 256


@dataclass(frozen=True)
class BuildOptions:
    imagenet: Path = option(
        type=PATH, help="Your ImageNet-1k copy, in any of six layouts, found by itself: extracted train/ and val/ "
        "folders (val per class, or flat with the devkit's or Kaggle's labels), Kaggle's download, the original "
        "ILSVRC-2012 tars, Hugging Face's tar.gz shards or its parquet shards (README).")
    manifest: str = option("imagenette2", help="Built-in manifest name (`imagenette-build classes --manifests` lists "
                           "them) or path to a manifest .toml.")
    sizes: tuple[int | None, ...] = option(
        (160,), type=SizeType(), multiple=True, flag="--size", to_json=lambda sizes: [size_label(s) for s in sizes],
        help=f"Shortest side in pixels (1 to {MAX_SIZE}), or 'full' for the original JPEG bytes. Repeat for several "
        "archives in one pass (each source is read once).")
    out: Path = option(Path("dist"), type=PATH, help="Output folder for the .tgz, SHA256SUMS, MD5SUMS and "
                       "<stem>.json reports.")
    formats: tuple[str, ...] = option(
        ("tgz",), type=click.Choice(list(FORMATS)), multiple=True, flag="--format",
        help="Output format; repeat for several from one resize pass: tgz (the published layout), parquet (Hugging "
        "Face shards, needs imagenette-build[parquet]), webdataset (tar shards).")
    jobs: int | None = option(None, type=JobsType(), short="-j", help="Worker processes [default: all cores].")
    backend: str = option("loky", type=click.Choice(BACKENDS), help="joblib backend for the workers.")
    filter: str = option("bicubic", type=click.Choice(sorted(FILTERS)),
                         help="Resampling filter (not bicubic: not the published recipe).")
    quality: int = option(75, type=click.IntRange(1, 100),
                          help="JPEG quality of resized images (not 75: not the published recipe).")
    rounding: str = option("script", type=click.Choice(ROUNDINGS),
                           help="The long side: script is fast.ai's float arithmetic, int(long / (short / size)), as "
                           "published; floor, round, ceil round long * size / short in integers.")
    decode: str = option("full", type=click.Choice(DECODES),
                         help="full: decode every pixel, as published; scaled: let libjpeg decode large JPEGs at 1/2 "
                         "scale when that stays >= 2x the target (faster; pixels differ slightly).")
    batch_size: int = option(32, type=click.IntRange(1, MAX_BATCH_SIZE),
                             help=f"Images per worker task (at most {MAX_BATCH_SIZE}: up to 32 tasks per worker are "
                             "held at once).")
    cache: Path | None = option(None, type=PATH, help="Keep resized images in this folder [default: "
                                "OUT/.imagenette-cache], so a rerun after an interruption only does what was not "
                                "finished.")
    no_cache: bool = option(False, is_flag=True, help="Do not read or write the cache of resized images.")
    keep_cache: bool = option(False, is_flag=True, help="Keep OUT/.imagenette-cache after a successful build (it is "
                              "removed otherwise; a --cache DIR is always kept).")
    shard_size: int = option(
        SHARD_BYTES, type=ByteSize(), cli_default=f"{SHARD_BYTES >> 20}M",
        help=f"Parquet and WebDataset: image bytes per shard, at most (K, M, G: KiB, MiB, GiB). Each split is also "
        f"cut into at least {MIN_SHARDS} shards of equal image counts (DataLoader workers and nodes each read whole "
        "shards); a smaller size gives more.")
    skip_broken: bool = option(False, is_flag=True, help="Build without listed images that are missing or cannot be "
                               "read (named on stderr and in the report) instead of stopping.")
    scheduler: str | None = option(None, metavar="ADDRESS", envvar=SCHEDULER_ENV,
                                   help="Resize on the Dask cluster of this scheduler (like tcp://head:8786) instead "
                                   "of local workers; --jobs and --backend are then unused. Needs "
                                   "imagenette-build[dask], and the workers must see --imagenet at the same path "
                                   "(docs/cluster.md).")
    dry_run: bool = option(False, is_flag=True, report=False,
                           help="Print the plan (classes, counts, missing images, how many images come from "
                           "ILSVRC-2012 train and val per split); write nothing.")
    # Not options: the run's environment (read once, settings.py), and what the build reports.
    settings: Settings = field(default_factory=Settings, compare=False)

    def __post_init__(self):
        if self.cache is not None and self.no_cache:
            raise UserError("give --cache DIR or --no-cache, not both")
        if not self.sizes:
            raise UserError("give at least one size (--size)")
        if not self.formats:
            raise UserError("give at least one format (--format)")
        # the same size or format twice is one archive; every core when --jobs is not given
        object.__setattr__(self, "sizes", tuple(dict.fromkeys(self.sizes)))
        object.__setattr__(self, "formats", tuple(dict.fromkeys(self.formats)))
        object.__setattr__(self, "jobs", self.jobs or default_jobs())

    @property
    def recipe(self) -> Recipe:
        return Recipe(filter=self.filter, quality=self.quality, rounding=self.rounding, decode=self.decode)

    @property
    def resizes(self) -> bool:
        return any(s is not None for s in self.sizes)

    def cache_dir(self) -> Path | None:
        """Where resized images are cached: --cache DIR, else <out>/.imagenette-cache; None when off
        (--no-cache) or when only full-size archives are built (their bytes are the sources')."""
        if self.no_cache or not self.resizes:
            return None
        return self.cache if self.cache is not None else self.out / DEFAULT_CACHE_DIRNAME

    def output_paths(self, stem_of) -> list[Path]:
        """Every file or folder the build puts in place; `stem_of(size)` names a size's outputs."""
        return [self.out / FORMATS[f].final_name(stem_of(s)) for s in self.sizes for f in self.formats]

    def on_cluster(self, imagenet: Path) -> BuildOptions:
        return replace(self, imagenet=imagenet)
