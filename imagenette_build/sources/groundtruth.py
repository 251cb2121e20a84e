"""Readers for the two files that label the flat ILSVRC-2012 validation folder.

- the devkit's `ILSVRC2012_validation_ground_truth.txt`: 50,000 lines, line i is the devkit class
  ID (1..1000, devkit order, not sorted-WNID order) of `ILSVRC2012_val_<i:08d>.JPEG`;
- Kaggle's `LOC_val_solution.csv`: `ImageId,PredictionString`, the first word of PredictionString
  is the WNID.
Both return {file name: wnid}. The devkit file is also read from inside the devkit archive
(`ILSVRC2012_devkit_t12.tar.gz`, a few MB, read whole) without extracting it.

What "the devkit matches" means here: exactly 50,000 labels, each a devkit ID in 1..1000, and each
class exactly 50 times (ILSVRC-2012 has 50 validation images per class). A devkit of another year,
a truncated or edited file fails one of these. `data/meta.mat` is not read (it would need scipy);
the devkit ID -> WNID table ships in `manifests/ilsvrc2012_classes.tsv` instead.
"""

from __future__ import annotations

import tarfile
from collections import Counter
from pathlib import Path

from .. import classes
from ..errors import UserError
from ..readfile import MIB, read_bytes

VAL_IMAGES = 50_000
VAL_PER_CLASS = 50
DEVKIT_DIR = "ILSVRC2012_devkit_t12"
DEVKIT_ARCHIVE = "ILSVRC2012_devkit_t12.tar.gz"
DEVKIT_GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"
KAGGLE_SOLUTION = "LOC_val_solution.csv"
MAX_LABELS = 64 * MIB  # bytes of a label file (the real ones: 190 kB, and 13 MB for Kaggle's CSV)


def val_filename(number: int) -> str:
    return f"ILSVRC2012_val_{number:08d}.JPEG"


def read_devkit_ground_truth(path: Path) -> dict[str, str]:
    try:
        text = read_bytes(path, MAX_LABELS, "a label file").decode("ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the devkit ground truth: {exc}") from None
    return parse_devkit_ground_truth(text, str(path))


def parse_devkit_ground_truth(text: str, where: str) -> dict[str, str]:
    by_id = classes.by_devkit_id()
    lines = text.split()
    if len(lines) != VAL_IMAGES:
        raise UserError(f"{where}: expected {VAL_IMAGES} labels (one per validation image), found {len(lines)}; "
                        "is this the ILSVRC2012 devkit?")
    out = {}
    per_class = Counter()
    for number, word in enumerate(lines, start=1):
        # (str.isdigit takes '²', which int() refuses, and int() refuses 4,301 digits)
        if not (word.isascii() and word.isdigit() and len(word) <= 4) or int(word) not in by_id:
            shown = repr(word) if len(word) <= 40 else f"{word[:40]!r}... ({len(word):,} characters)"
            raise UserError(f"{where} line {number}: {shown} is not a devkit class ID (1..1000)")
        per_class[int(word)] += 1
        out[val_filename(number)] = by_id[int(word)].wnid
    odd = [(i, n) for i, n in sorted(per_class.items()) if n != VAL_PER_CLASS]
    if odd or len(per_class) != len(by_id):
        what = (f"class ID {odd[0][0]} has {odd[0][1]}" if odd
                else f"{len(by_id) - len(per_class)} class IDs never appear")
        raise UserError(f"{where}: does not match ILSVRC-2012 (every class has {VAL_PER_CLASS} validation "
                        f"images; {what}); is this the ILSVRC2012 devkit?")
    return out


def read_devkit_archive(path: Path) -> dict[str, str]:
    """The ground truth from inside `ILSVRC2012_devkit_t12.tar.gz`, nothing extracted."""
    where = f"{path} (member data/{DEVKIT_GROUND_TRUTH})"
    try:
        with tarfile.open(path, "r:gz" if path.name.endswith(".gz") else "r:") as tar:
            member = next((m for m in tar if m.isfile() and
                           m.name.endswith(f"data/{DEVKIT_GROUND_TRUTH}")), None)
            if member is None:
                raise UserError(f"{path}: has no data/{DEVKIT_GROUND_TRUTH}; is this the ILSVRC2012 devkit "
                                f"({DEVKIT_ARCHIVE})?")
            if member.size > MAX_LABELS:  # (the real one: 190 kB; a forged size would be read whole)
                raise UserError(f"{where}: {member.size:,} bytes, more than a label file may have ({MAX_LABELS:,})")
            text = tar.extractfile(member).read().decode("ascii")
    except (OSError, EOFError, tarfile.TarError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the devkit archive: {' '.join(str(exc).split())}") from None
    return parse_devkit_ground_truth(text, where)


def find_val_labels(folder: Path) -> tuple[Path, dict[str, str]] | None:
    """Validation labels beside the original tars: the devkit archive, an extracted devkit, the bare
    ground-truth file or Kaggle's CSV, first found wins. None when there is none."""
    candidates = [folder / DEVKIT_ARCHIVE, folder / DEVKIT_ARCHIVE.removesuffix(".gz"),
                  folder / DEVKIT_DIR / "data" / DEVKIT_GROUND_TRUTH, folder / "data" / DEVKIT_GROUND_TRUTH,
                  folder / DEVKIT_GROUND_TRUTH, folder / KAGGLE_SOLUTION]
    found = next((p for p in candidates if p.is_file()), None)
    return None if found is None else (found, read_label_file(found))


def read_label_file(path: Path) -> dict[str, str]:
    """{file name: wnid} from any of the label files: Kaggle's CSV, the devkit archive (.tar.gz or
    .tar) or the devkit's ground-truth file, told apart by name."""
    if path.name == KAGGLE_SOLUTION:
        return read_kaggle_solution(path)
    if path.name.startswith(DEVKIT_DIR):
        return read_devkit_archive(path)
    return read_devkit_ground_truth(path)


def read_kaggle_solution(path: Path) -> dict[str, str]:
    known = classes.by_wnid()
    try:
        lines = read_bytes(path, MAX_LABELS, "a label file").decode("utf-8").splitlines()
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
