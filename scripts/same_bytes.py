"""One build, two Python environments (CI: stock Pillow and pillow-simd): the same archive bytes.

    python scripts/same_bytes.py --work DIR PYTHON_A PYTHON_B [--photos DIR]

Writes a sample ImageNet (the imagenette2 and imagewoof2 file lists, 12 images a class, made from
the real photos of --photos when that folder exists, else synthetic), builds it at 160 and 320 px
and full size in every format with each interpreter (`PYTHON -m imagenette_build.cli`), and
compares SHA256SUMS (the archives and their provenance, cards and contact sheets, every parquet and
WebDataset shard and their documents, Croissant included) and every member list. Prints what each environment is (`--version`) and exits 1 when any byte
differs, naming the archives and members that do.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_PHOTOS = HERE.parent.parent / "shared" / "reference" / "imagenet-samples"


def cli(python: str, *args) -> str:
    done = subprocess.run([python, "-m", "imagenette_build.cli", *map(str, args)], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"same_bytes: {python} {' '.join(map(str, args))} failed:\n{done.stderr}")
    return done.stdout


def member_lists(out: Path) -> dict[str, dict[str, str]]:
    return {p.name: dict(line.split("  ", 1)[::-1] for line in p.read_text().splitlines())
            for p in sorted(out.glob("*.members.sha256"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("python_a")
    ap.add_argument("python_b")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    args = ap.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    photos = ["--photos", args.photos] if args.photos.is_dir() else []
    builds = {}
    for manifest in ("imagenette2", "imagewoof2"):
        imagenet = args.work / f"imagenet-{manifest}"
        cli(args.python_a, "sample-imagenet", imagenet, "--manifest", manifest, "--per-class", "12", "-q", *photos)
        subset = next(imagenet.glob("*.toml"))
        for label, python in (("a", args.python_a), ("b", args.python_b)):
            out = args.work / f"dist-{label}"
            cli(python, "--imagenet", imagenet, "--manifest", subset, "--size", "160", "--size", "320",
                "--size", "full", "--format", "tgz", "--format", "parquet", "--format", "webdataset",
                "--out", out, "-q", "--no-cache")
            builds[label] = out
    for label, python in (("a", args.python_a), ("b", args.python_b)):
        print(f"{label}: {cli(python, '--version').strip()}")
    sums = {label: (out / "SHA256SUMS").read_text() for label, out in builds.items()}
    print(sums["a"], end="")
    if sums["a"] == sums["b"]:
        print(f"same_bytes: the same {sums['a'].count(chr(10))} files, byte for byte "
              f"({'real photos' if photos else 'synthetic images'})")
        return
    lists = {label: member_lists(out) for label, out in builds.items()}
    for name, digests in lists["a"].items():
        other = lists["b"].get(name, {})
        differ = sorted(m for m in digests if other.get(m) != digests[m])
        if differ:
            print(f"{name}: {len(differ)} members differ, first: {', '.join(differ[:5])}")
    sys.exit("same_bytes: the two environments built different archives:\n" + sums["b"])


if __name__ == "__main__":
    main()
