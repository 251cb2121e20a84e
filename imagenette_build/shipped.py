"""The facts the package ships, all in one folder: the top-level manifests/ of the source tree,
installed as the package `imagenette_build.manifests` (pyproject.toml maps it there).

It holds the dataset manifests and the files they name (file lists, published member hashes),
ImageNet's class table (`ilsvrc2012_classes.tsv`, read by `classes`) and the size and checksums of
every published archive (`published_archives.csv`, read by `published`).
"""

from __future__ import annotations

from pathlib import Path


def shipped_dir() -> Path:
    """`imagenette_build/manifests/` in an installed wheel, or the checkout's manifests/ folder
    when running from source or an editable install."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "manifests", here.parent / "manifests"):
        if (candidate / "imagenette2.toml").is_file():
            return candidate
    return here / "manifests"


def read_shipped(name: str) -> str:
    """The text of one shipped file."""
    return (shipped_dir() / name).read_text("utf-8")
