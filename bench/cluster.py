"""The cost of running the build on a Dask cluster instead of local joblib workers, on one machine.

    python bench/cluster.py [--imagenet DIR] [--repeats 3] [--work bench/out/cluster] [--size 160]

Builds the same corpus (default: the whole imagenette2 file list written by `sample-imagenet`,
made once under --work) three ways, each as its own `imagenette-build` process, alternating, with
`--no-cache` (a warm cache would hide the work) and `--quiet`:

- local: `--jobs 2` (loky), the default path;
- LocalCluster: a `distributed.LocalCluster` of 2 worker processes x 1 thread, started once and
  kept (cluster start-up is not counted: a cluster is started once and used for many builds);
- dask CLI: `dask scheduler` + 2 `dask worker` processes on loopback (scripts/loopback_cluster.py).

Prints the median wall time of each and the ratio to local, and checks every archive has the
same sha256. Never run in CI; on a shared machine, quote medians and say so.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "scripts"))


def cli(*args) -> list[str]:
    return [sys.executable, "-m", "imagenette_build.cli", *map(str, args)]


def timed_build(imagenet: Path, out: Path, size: str, extra: list[str]) -> tuple[float, str]:
    if out.exists():
        for f in out.iterdir():
            if f.is_file():
                f.unlink()
    started = time.monotonic()
    subprocess.run(cli("--imagenet", imagenet, "--size", size, "--out", out, "--no-cache", "-q", *extra), check=True)
    elapsed = time.monotonic() - started
    archive = next(out.glob("*.tgz"))
    return elapsed, hashlib.sha256(archive.read_bytes()).hexdigest()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--imagenet", type=Path, default=None)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--work", type=Path, default=HERE / "out" / "cluster")
    p.add_argument("--size", default="160")
    args = p.parse_args()
    from distributed import LocalCluster
    from loopback_cluster import LoopbackCluster

    work = args.work.absolute()
    imagenet = args.imagenet
    if imagenet is None:
        imagenet = work / "imagenet"
        if not (imagenet / "train").is_dir():
            subprocess.run(cli("sample-imagenet", imagenet, "-q"), check=True)
    imagenet = imagenet.absolute()
    times: dict[str, list[float]] = {"local": [], "LocalCluster": [], "dask CLI": []}
    hashes = set()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as local_cluster, \
            LoopbackCluster(work / "loopback", workers=2) as loopback:
        extra = {"local": ["--jobs", "2"], "LocalCluster": ["--scheduler", local_cluster.scheduler_address],
                 "dask CLI": ["--scheduler", loopback.address]}
        for i in range(args.repeats):
            for name in times:
                t, digest = timed_build(imagenet, work / "dist" / name.replace(" ", "-"), args.size, extra[name])
                times[name].append(t)
                hashes.add(digest)
                print(f"run {i + 1} {name}: {t:.1f} s", file=sys.stderr)
    base = statistics.median(times["local"])
    print(f"| build ({args.size} px, {imagenet}) | median wall | runs | vs local |")
    print("| --- | --- | --- | --- |")
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"| {name} | {m:.1f} s | {', '.join(f'{t:.1f}' for t in ts)} | {m / base:.2f}x |")
    print(f"archives: {'all identical' if len(hashes) == 1 else 'DIFFER: ' + ', '.join(sorted(hashes))}")
    return 0 if len(hashes) == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
