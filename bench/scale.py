"""`make bench-scale`: all 1000 classes at three sizes, built at 160 px: does a build scale?

    python bench/scale.py [--per-class 15,60,150] [--work bench/out/scale] [--jobs 2] [--size 160]
                          [--repeats 1] [--keep]

Corpus: `sample-imagenet --manifest imagenet-1k --per-class MAX` (extracted folders; 150 a class
is 180,000 images, about 20 GB), written once and kept in --work. Each smaller size is a tree of
hard links to its first N train and ceil(N/5) val images a class: the very files `sample-imagenet
--per-class N` writes (an image is a function of its name), without writing them again.

Each size is built with `--manifest imagenet-1k --size 160` and the defaults otherwise, in its
own process (bench/scale_probe.py), smallest first, each output removed after its run. Prints
images, wall time, images/s, time to first image (planning: from the process's start to the first
resized image back in the parent) and its share of the wall time, peak RSS of the building process
and of the largest worker, and the parent's CPU per image (all its threads, and its main thread
alone, the serial part) with the throughput that the parent alone would allow.

Targets (reported, not asserted): images/s at the largest size within 10 % of the smallest; the
parent's peak RSS flat and under 300 MB; planning under 2 % of the wall time. Never run in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLI = [sys.executable, "-m", "imagenette_build.cli"]
PROBE = [sys.executable, str(HERE / "scale_probe.py")]
MANIFEST = "imagenet-1k"
MB = 1e6


def write_corpus(root: Path, per_class: int, jobs: int) -> None:
    if (root / ".complete").exists():
        return
    shutil.rmtree(root, ignore_errors=True)
    print(f"writing {root} ({per_class} train images a class, 1000 classes) ...", file=sys.stderr, flush=True)
    t = time.perf_counter()
    subprocess.run([*CLI, "sample-imagenet", root, "--manifest", MANIFEST, "--per-class", str(per_class),
                    "--jobs", str(jobs), "-q"], check=True)
    print(f"  {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    (root / ".complete").touch()


def link_subset(full: Path, root: Path, per_class: int) -> None:
    """The images `sample-imagenet --per-class N` writes, as hard links into the larger corpus."""
    from imagenette_build import manifest as manifests
    from imagenette_build.samplegen import wanted_images
    from imagenette_build.samplelayouts import image_path

    if (root / ".complete").exists():
        return
    shutil.rmtree(root, ignore_errors=True)
    for im in wanted_images(manifests.load(MANIFEST), per_class):
        target = image_path(root, "folders", im)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(image_path(full, "folders", im), target)
    (root / ".complete").touch()


def build(corpus: Path, out: Path, args) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    result = out.with_suffix(".json")
    cmd = [*PROBE, result, "--imagenet", corpus, "--manifest", MANIFEST, "--size", str(args.size),
           "--out", out, "--jobs", str(args.jobs), "--quiet"]
    t = time.perf_counter()
    subprocess.run(list(map(str, cmd)), check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    r = json.loads(result.read_text())
    report = json.loads((out / f"{MANIFEST}-{args.size}.json").read_text())
    if not args.keep:
        shutil.rmtree(out)
    m, workers = r["marks"], r["workers"]
    images = report["images"]
    resize_phase = m["last_image"] - m["first_image"]
    return {
        "images": images,
        "wall": wall,  # as seen from outside: the probe's start-up and exit included
        "rate": images / wall,
        "first_image": m["first_image"],
        "scan": m["scan_end"] - m["scan_start"],
        "planning_share": m["first_image"] / wall,
        "parent_peak_rss": r["parent_peak_rss"],
        "worker_peak_rss": max(w["peak_rss"] for w in workers),
        "workers": len(workers),
        "parent_cpu": r["parent_cpu"],
        "workers_cpu": sum(w["cpu"] for w in workers),
        "parent_cpu_per_image": (m["cpu_last"] - m["cpu_first"]) / images,
        "main_cpu_per_image": (m["main_cpu_last"] - m["main_cpu_first"]) / images,
        "busiest_thread_per_image": max(r["parent_threads_cpu"] or [0]) / images,  # besides the main thread
        "resize_phase": resize_phase,
        "tail": wall - m["last_image"],  # commit, report, sums, the cache's removal, exit
        "report_bytes": (out / f"{MANIFEST}-{args.size}.json").stat().st_size if args.keep else None,
    }


def table(rows: list[tuple[int, dict]]) -> str:
    head = ("| a class | images | wall s | images/s | first image s (share) | parent peak RSS MB | "
            "worker peak RSS MB | parent CPU ms/image (main thread) | parent-bound images/s (one core / threads) |")
    lines = [head, "| " + " | ".join(["---:"] * 9) + " |"]
    for n, r in rows:
        lines.append(
            f"| {n} | {r['images']:,} | {r['wall']:.1f} | {r['rate']:.0f} | {r['first_image']:.1f} "
            f"({100 * r['planning_share']:.1f} %) | {r['parent_peak_rss'] / MB:.0f} | "
            f"{r['worker_peak_rss'] / MB:.0f} | {1000 * r['parent_cpu_per_image']:.2f} "
            f"({1000 * r['main_cpu_per_image']:.2f}) | {1 / r['parent_cpu_per_image']:,.0f} / "
            f"{1 / max(r['main_cpu_per_image'], r['busiest_thread_per_image']):,.0f} |")
    return "\n".join(lines)


def verdict(rows: list[tuple[int, dict]]) -> list[str]:
    small, large = rows[0][1], rows[-1][1]
    ratio = large["rate"] / small["rate"]
    rss = [r["parent_peak_rss"] / MB for _, r in rows]
    share = max(r["planning_share"] for _, r in rows)
    return [
        f"images/s, largest / smallest: {ratio:.2f} (target >= 0.90): {'met' if ratio >= 0.9 else 'NOT met'}",
        f"parent peak RSS {min(rss):.0f}..{max(rss):.0f} MB (target flat, < 300): "
        f"{'met' if max(rss) < 300 and max(rss) <= 1.1 * min(rss) else 'NOT met'}",
        f"planning, largest share of wall {100 * share:.1f} % (target < 2 %): {'met' if share < 0.02 else 'NOT met'}",
    ]


def extrapolation(r: dict) -> list[str]:
    """ImageNet-1k from the largest run's costs per image: the workers' CPU `w`, the parent's CPU `p`
    (all threads) and its busiest thread `s` (the serial part: the parent packs on one process).
    C cores make min(C / (w + p), 1 / s) images/s; a cluster of N machines of c cores adds workers
    (N * c / w) but not parents (the parent's 1 / s, on its own machine)."""
    total = 1_331_167  # ImageNet-1k: 1,281,167 train + 50,000 val
    w = r["workers_cpu"] / r["images"]
    p, s = r["parent_cpu_per_image"], max(r["main_cpu_per_image"], r["busiest_thread_per_image"])
    lines = [f"per image at the largest size: workers {1000 * w:.2f} ms of CPU; parent {1000 * p:.2f} ms (main "
             f"thread {1000 * r['main_cpu_per_image']:.2f} ms, busiest other thread "
             f"{1000 * r['busiest_thread_per_image']:.2f} ms): the parent alone allows {1 / s:,.0f} images/s; "
             f"scan {r['scan']:.1f} s; after the last image {r['tail']:.1f} s"]
    for cores in (2, 16, 64):
        rate = min(cores / (w + p), 1 / s)
        lines.append(f"  ImageNet-1k ({total:,} images) on {cores} cores: {rate:,.0f} images/s, about "
                     f"{total / rate / 3600:.2f} h{' (parent-bound)' if rate == 1 / s else ''}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-class", default="15,60,150", help="train images a class, comma-separated")
    ap.add_argument("--work", type=Path, default=HERE / "out" / "scale")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--repeats", type=int, default=1, help="builds of each size (the fastest is shown)")
    ap.add_argument("--keep", action="store_true", help="keep each build's outputs in --work")
    args = ap.parse_args()
    sizes = sorted(int(x) for x in args.per_class.split(","))
    args.work.mkdir(parents=True, exist_ok=True)
    full = args.work / f"corpus-{sizes[-1]}"
    write_corpus(full, sizes[-1], args.jobs)
    corpora = {n: full if n == sizes[-1] else args.work / f"corpus-{n}" for n in sizes}
    for n in sizes[:-1]:
        link_subset(full, corpora[n], n)
    print(f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}, --jobs {args.jobs}, "
          f"--size {args.size}", flush=True)
    rows = []
    for n in sizes:
        runs = [build(corpora[n], args.work / f"out-{n}", args) for _ in range(args.repeats)]
        best = min(runs, key=lambda r: r["wall"])
        rows.append((n, best))
        print(f"  {n} a class: {best['images']:,} images in {best['wall']:.1f} s", file=sys.stderr, flush=True)
    (args.work / "results.json").write_text(json.dumps(rows, indent=1))
    print(table(rows))
    for line in verdict(rows):
        print(line)
    for line in extrapolation(rows[-1][1]):
        print(line)

if __name__ == "__main__":
    main()
