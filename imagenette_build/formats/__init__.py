"""The output formats: one module each, one line here. `tgz` is the default and the published
layout; `parquet` and `webdataset` serve the loaders people train with (README "Using the archives"),
as folders of shards (`shards`)."""

from __future__ import annotations

from .base import SHARD_BYTES, Context, Output, OutputFile
from .parquet import ParquetShards
from .shards import MIN_SHARDS, Shards
from .tgz import Tgz
from .webdataset import WebDatasetShards

FORMATS: dict[str, type[Output]] = {"tgz": Tgz, "parquet": ParquetShards, "webdataset": WebDatasetShards}

__all__ = ["FORMATS", "MIN_SHARDS", "SHARD_BYTES", "Context", "Output", "OutputFile", "Shards"]
