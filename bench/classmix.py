"""`make bench-classmix`: how mixed in classes the first batches of a WebDataset training loop are.

    python bench/classmix.py [--work bench/out/classmix] [--wds DIR ...] [--batches 10] [--batch-size 64]
                             [--buffer 1000] [--runs 5] [--jobs 2]

Without --wds: makes (once, kept in --work) a synthetic ImageNet of the whole imagenette2 file list
(`sample-imagenet --layout folders`) and its WebDataset output at 160 px with the defaults, and
measures that. With --wds: the train shards of each folder named (an older build's, to compare).
Each run reads the train shards as a training loop does, `WebDataset(shards, shardshuffle=100,
seed=run).shuffle(buffer, seed=run)`, labels only (no image decoded), and cuts the first --batches
batches of --batch-size; over --runs runs (seeds 0, 1, ...) it prints the classes a batch holds
(median, min) and the largest share of one class in a batch (median, max). Not a timed test; never
run in CI.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from collections import Counter
from itertools import islice
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLI = [sys.executable, "-m", "imagenette_build.cli"]


def built(work: Path, jobs: int) -> Path:
    """The WebDataset folder of the whole imagenette2 list at 160 px, made on the first run."""
    imagenet, out = work / "imagenet", work / "dist"
    if not (imagenet / ".complete").exists():
        subprocess.run([*CLI, "sample-imagenet", imagenet, "--layout", "folders", "-j", str(jobs), "-q"], check=True)
        (imagenet / ".complete").touch()
    wds = out / "imagenette2-160-wds"
    if not wds.is_dir():
        subprocess.run([*CLI, "--imagenet", imagenet, "--size", "160", "--out", out, "--format", "webdataset",
                        "--no-cache", "-j", str(jobs), "-q"], check=True)
    return wds


def first_batches(shards: list[str], run: int, batches: int, batch_size: int, buffer: int) -> list[list[int]]:
    import webdataset as wds

    samples = wds.WebDataset(shards, shardshuffle=100, seed=run).shuffle(buffer, seed=run).to_tuple("cls")
    labels = [int(cls) for (cls,) in islice(samples, batches * batch_size)]
    return [labels[i:i + batch_size] for i in range(0, len(labels), batch_size)]


def class_mix(batches: list[list[int]]) -> dict:
    """Classes a batch holds (median, min) and the largest share of one class in a batch (median, max)."""
    classes = [len(set(b)) for b in batches]
    shares = [max(Counter(b).values()) / len(b) for b in batches]
    return {"classes_median": statistics.median(classes), "classes_min": min(classes),
            "top_share_median": statistics.median(shares), "top_share_max": max(shares)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=HERE / "out" / "classmix")
    ap.add_argument("--wds", type=Path, action="append", help="a WebDataset folder to measure (repeatable)")
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--buffer", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    folders = args.wds or [built(args.work, args.jobs)]
    print(f"first {args.batches} batches of {args.batch_size}, shardshuffle=100, .shuffle({args.buffer}), "
          f"{args.runs} runs (seeds 0..{args.runs - 1})")
    for folder in folders:
        shards = sorted(str(p) for p in folder.glob("train-*.tar"))
        batches = [b for run in range(args.runs)
                   for b in first_batches(shards, run, args.batches, args.batch_size, args.buffer)]
        mix = class_mix(batches)
        print(f"{folder}: {len(shards)} train shards; classes a batch: median {mix['classes_median']:g}, "
              f"min {mix['classes_min']}; largest share of one class: median {mix['top_share_median']:.0%}, "
              f"max {mix['top_share_max']:.0%}")


if __name__ == "__main__":
    main()
