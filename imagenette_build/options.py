"""A build's options: what the command line and the Python API give the build, as one value."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .cache import DEFAULT_DIRNAME as DEFAULT_CACHE_DIRNAME
from .engine import default_jobs
from .formats import FORMATS, SHARD_BYTES
from .transform import Recipe

@dataclass(frozen=True)
class BuildOptions:
    imagenet: Path
    manifest: str = "imagenette2"
    sizes: tuple[int | None, ...] = (160,)  # None: full size, original bytes
    out: Path = Path("dist")
    jobs: int = field(default_factory=default_jobs)
    backend: str = "loky"
    scheduler: str | None = None  # a Dask scheduler address: the resize work runs on that cluster
    recipe: Recipe = Recipe()
    batch_size: int = 32
    use_cache: bool = True  # --no-cache: False
    cache: Path | None = None  # --cache DIR; None: <out>/.imagenette-cache
    skip_broken: bool = False  # build without listed images that are missing or cannot be read
    formats: tuple[str, ...] = ("tgz",)  # formats.FORMATS
    keep_cache: bool = False  # keep the default cache folder after a successful build
    shard_bytes: int = SHARD_BYTES  # parquet and webdataset shards

    @property
    def resizes(self) -> bool:
        return any(s is not None for s in self.sizes)

    def cache_dir(self) -> Path | None:
        """Where resized images are cached: --cache DIR, else <out>/.imagenette-cache; None when off
        (--no-cache) or when only full-size archives are built (their bytes are the sources')."""
        if not self.use_cache or not self.resizes:
            return None
        return self.cache if self.cache is not None else self.out / DEFAULT_CACHE_DIRNAME

    def output_paths(self, stem_of) -> list[Path]:
        """Every file or folder the build puts in place; `stem_of(size)` names a size's outputs."""
        return [self.out / FORMATS[f].final_name(stem_of(s)) for s in self.sizes for f in self.formats]


def size_label(size: int | None) -> str:
    return "full" if size is None else str(size)
