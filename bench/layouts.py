"""`make bench-layouts`: the same images built from extracted folders and from the original tars.

    python bench/layouts.py [--repeats 3] [--work bench/out/layouts] [--per-class N]
                            [--layouts folders,ilsvrc-tars[,hf-shards,hf-parquet]] [--jobs 2] [--size 160]

Corpus: the sample generator's synthetic ImageNet with the whole imagenette2 file list (13,394
images; --per-class N for a subset), written once per layout (the same bytes in each) and kept in
--work for later runs. Each build is its own process with a fresh output folder; layouts are run in
turn, repeat after repeat, so a noisy neighbour slows them alike. Prints the median wall time of the
build and of planning alone (--dry-run: finding the images), the ratio to extracted folders (target
for the original tars: <= 1.1), and checks that every layout gave the same archive. Never run in CI.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLI = [sys.executable, "-m", "imagenette_build.cli"]


def run(cmd: list, **kw) -> float:
    t = time.perf_counter()
    subprocess.run([*CLI, *map(str, cmd)], check=True, stdout=subprocess.DEVNULL, **kw)
    return time.perf_counter() - t


def corpus(work: Path, layout: str, per_class: int | None, jobs: int) -> tuple[Path, list[str]]:
    root = work / f"corpus-{layout}-{per_class or 'all'}"
    done = root / ".complete"
    if not done.exists():
        shutil.rmtree(root, ignore_errors=True)
        extra = ["--per-class", per_class] if per_class else []
        print(f"writing the {layout} corpus to {root} ...", file=sys.stderr, flush=True)
        t = run(["sample-imagenet", root, "--layout", layout, "--jobs", jobs, "-q", *extra])
        print(f"  {t:.0f} s", file=sys.stderr)
        done.touch()
    manifest = sorted(root.glob("*-sample.toml"))
    return root, (["--manifest", manifest[0]] if manifest else [])


def no_cache_flag() -> list[str]:
    """Builds must not reuse each other's resized images, if this version keeps a cache."""
    help_text = subprocess.run([*CLI, "build", "--help"], capture_output=True, text=True).stdout
    return ["--no-cache"] if "--no-cache" in help_text else []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--work", type=Path, default=HERE / "out" / "layouts")
    ap.add_argument("--per-class", type=int, default=None)
    ap.add_argument("--layouts", default="folders,ilsvrc-tars")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--size", default="160")
    args = ap.parse_args()
    layouts = args.layouts.split(",")
    args.work.mkdir(parents=True, exist_ok=True)
    spill = args.work / "spill"
    spill.mkdir(exist_ok=True)
    env = {**os.environ, "IMAGENETTE_BUILD_TMPDIR": str(spill)}
    roots = {layout: corpus(args.work, layout, args.per_class, args.jobs) for layout in layouts}
    flags = no_cache_flag()

    builds: dict[str, list[float]] = {layout: [] for layout in layouts}
    plans: dict[str, list[float]] = {layout: [] for layout in layouts}
    digests: dict[str, str] = {}
    for _ in range(args.repeats):
        for layout in layouts:
            root, manifest = roots[layout]
            out = args.work / f"dist-{layout}"
            shutil.rmtree(out, ignore_errors=True)
            common = ["--imagenet", root, *manifest, "--size", args.size, "--jobs", args.jobs, "-q"]
            plans[layout].append(run([*common, "--dry-run", "--out", out], env=env))
            builds[layout].append(run([*common, "--out", out, *flags], env=env))
            archive = next(out.glob("*.tgz"))
            digests.setdefault(layout, hashlib.sha256(archive.read_bytes()).hexdigest())
            shutil.rmtree(out)

    n = args.per_class and f"--per-class {args.per_class}" or "the whole imagenette2 list (13,394 images)"
    print(f"# layouts benchmark: {n}, synthetic content, --size {args.size} --jobs {args.jobs}, "
          f"median of {args.repeats}")
    print(f"# machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    base = statistics.median(builds[layouts[0]])
    print(f"| layout | build (s) | runs | ratio to {layouts[0]} | planning alone (s) |")
    print("| --- | --- | --- | --- | --- |")
    for layout in layouts:
        med = statistics.median(builds[layout])
        runs = " ".join(f"{t:.1f}" for t in builds[layout])
        print(f"| {layout} | {med:.1f} | {runs} | {med / base:.3f} | {statistics.median(plans[layout]):.2f} |")
    same = len(set(digests.values())) == 1
    print(f"same archive from every layout: {'yes' if same else 'NO'} ({next(iter(digests.values()))[:16]}...)")
    leftover = list(spill.iterdir())
    if leftover:
        print(f"spill folders left behind: {leftover}")
    if not same or leftover:
        sys.exit(1)


if __name__ == "__main__":
    main()
