"""Readers for the two files that label the flat ILSVRC-2012 validation folder.

- the devkit's `ILSVRC2012_validation_ground_truth.txt`: 50,000 lines, line i is the devkit class
  ID (1..1000, devkit order, not sorted-WNID order) of `ILSVRC2012_val_<i:08d>.JPEG`;
- Kaggle's `LOC_val_solution.csv`: `ImageId,PredictionString`, the first word of PredictionString
  is the WNID.
Both return {file name: wnid}.
"""

from __future__ import annotations

from pathlib import Path

from .. import classes
from ..errors import UserError

VAL_IMAGES = 50_000
DEVKIT_GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"
KAGGLE_SOLUTION = "LOC_val_solution.csv"


def val_filename(number: int) -> str:
    return f"ILSVRC2012_val_{number:08d}.JPEG"


def read_devkit_ground_truth(path: Path) -> dict[str, str]:
    by_id = classes.by_devkit_id()
    try:
        lines = path.read_text("ascii").split()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the devkit ground truth: {exc}") from None
    if len(lines) != VAL_IMAGES:
        raise UserError(f"{path}: expected {VAL_IMAGES} labels (one per validation image), found {len(lines)}; "
                        "is this the ILSVRC2012 devkit?")
    out = {}
    for number, text in enumerate(lines, start=1):
        if not text.isdigit() or int(text) not in by_id:
            raise UserError(f"{path} line {number}: {text!r} is not a devkit class ID (1..1000)")
        out[val_filename(number)] = by_id[int(text)].wnid
    return out


def read_kaggle_solution(path: Path) -> dict[str, str]:
    known = classes.by_wnid()
    try:
        lines = path.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the Kaggle validation labels: {exc}") from None
    if not lines or lines[0].strip() != "ImageId,PredictionString":
        raise UserError(f"{path}: the first line must be 'ImageId,PredictionString'")
    out = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        image_id, _, prediction = line.partition(",")
        words = prediction.split()
        if not image_id.startswith("ILSVRC2012_val_") or not words or words[0] not in known:
            raise UserError(f"{path} line {number}: expected 'ILSVRC2012_val_<n>,<wnid> ...', got {line[:60]!r}")
        out[image_id + ".JPEG"] = words[0]
    return out
