"""ImageNet readers, one module per layout, and the detection that picks one.

A new layout is one module with a `detect(root) -> Source | None` and one line in `DETECTORS`.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from . import folders, hf_parquet, hf_shards, ilsvrc_tars
from .base import Source, SourceImage, SourceRef

__all__ = ["Source", "SourceImage", "SourceRef", "open_source", "DETECTORS"]

# (what it is, what it looks for, detector). Detectors only look at names: cheap, no reading.
DETECTORS = [
    ("extracted folders", folders.LOOKED_FOR["extracted folders"], folders.detect_extracted),
    ("Kaggle tree", folders.LOOKED_FOR["Kaggle"], folders.detect_kaggle),
    (ilsvrc_tars.LAYOUT, ilsvrc_tars.LOOKED_FOR, ilsvrc_tars.detect),
    (hf_shards.LAYOUT, hf_shards.LOOKED_FOR, hf_shards.detect),
    (hf_parquet.LAYOUT, hf_parquet.LOOKED_FOR, hf_parquet.detect),
]


def open_source(root: Path) -> Source:
    """The one ImageNet layout found at `root`; a clear error when none or several match."""
    if not root.exists():
        raise UserError(f"--imagenet {root}: no such folder")
    if not root.is_dir():
        raise UserError(f"--imagenet {root}: is a file, not a folder")
    found = [(name, src) for name, _, detect in DETECTORS if (src := detect(root)) is not None]
    if len(found) > 1:
        names = " and ".join(src.describe() for _, src in found)
        raise UserError(f"--imagenet {root}: mixed layouts: {names}; point --imagenet at a folder with one of them")
    if not found:
        looked = "; ".join(f"{name}: {what}" for name, what, _ in DETECTORS)
        raise UserError(f"--imagenet {root}: no ImageNet layout found. Looked for {looked}")
    return found[0][1]
