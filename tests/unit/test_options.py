"""A build's options (options.py): where the cache is, and every file or folder a build puts in place."""

from __future__ import annotations

from pathlib import Path

from imagenette_build.options import BuildOptions, size_label


def test_cache_dir_is_under_out_unless_given_and_none_when_nothing_is_resized():
    opts = BuildOptions(imagenet=Path("/in"), out=Path("dist"))
    assert opts.cache_dir() == Path("dist/.imagenette-cache")
    given = BuildOptions(imagenet=Path("/in"), out=Path("dist"), cache=Path("/shared/c"))
    assert given.cache_dir() == Path("/shared/c")
    assert BuildOptions(imagenet=Path("/in"), no_cache=True).cache_dir() is None  # --no-cache
    # full size only: the bytes are the sources', nothing to cache
    assert BuildOptions(imagenet=Path("/in"), sizes=(None,), cache=Path("/shared/c")).cache_dir() is None
    assert BuildOptions(imagenet=Path("/in"), sizes=(None, 64)).cache_dir() == Path("dist/.imagenette-cache")


def test_output_paths_name_each_size_in_each_format():
    opts = BuildOptions(imagenet=Path("/in"), out=Path("dist"), sizes=(160, None),
                        formats=("tgz", "parquet", "webdataset"))
    stem_of = {160: "imagenette2-160", None: "imagenette2"}.get
    assert opts.output_paths(stem_of) == [Path("dist") / n for n in (
        "imagenette2-160.tgz", "imagenette2-160-parquet", "imagenette2-160-wds",
        "imagenette2.tgz", "imagenette2-parquet", "imagenette2-wds")]


def test_size_label():
    assert (size_label(160), size_label(None)) == ("160", "full")
