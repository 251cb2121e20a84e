"""A measurement, never a CI test: what the cache of resized images costs, and
what it saves when a build killed half way is run again.

    python bench/resume.py --imagenet /tmp/x/imagenet [--runs 3] [--work /tmp/resume-bench]

with `imagenette-build sample-imagenet /tmp/x/imagenet` (the full 13,394-image list). Each figure is
the median of --runs runs of the whole command (`python -m imagenette_build.cli ... -q`):

- cost: a build with --no-cache, a build with an empty cache (the default on a first build: every
  image is looked up, made and written), a build with a full cache;
- resume: a build with an empty cache is killed with SIGKILL half way (when half the images are in
  its cache; the build process only, its workers end by themselves), then run again with the same
  options; the rerun's time against the uninterrupted build's, and its archive's sha256 against it;
- per image (in this process, CPU time, no parallelism): a resize, the sha256 of the source, a cache
  miss with its write (one pack per 32 images, as the build's tasks do), a hit, and for comparison
  the write of one file per image (the layout before packs).

Wall times on a shared machine are noisy; CPU times (user + system of the command and its workers)
are printed beside them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)  # the command and the workers it waited for
    return r.ru_utime + r.ru_stime


def build(imagenet: Path, out: Path, *extra: str) -> tuple[float, dict, float]:
    cmd = [sys.executable, "-m", "imagenette_build.cli", "--imagenet", str(imagenet), "--out", str(out),
           "--json", "-q", *extra]
    cpu, t = _cpu(), time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    elapsed, cpu = time.perf_counter() - t, _cpu() - cpu
    if r.returncode != 0:
        sys.exit(f"build failed: {r.stderr}")
    return elapsed, json.loads(r.stdout), cpu


def entries(cache: Path) -> int:
    from imagenette_build.cache import count_entries

    return count_entries(cache)


def killed_half_way(imagenet: Path, out: Path, images: int, *extra: str) -> tuple[float, int]:
    """Start a build, SIGKILL it once half the images are in its cache; (seconds, entries then)."""
    cmd = [sys.executable, "-m", "imagenette_build.cli", "--imagenet", str(imagenet), "--out", str(out), "-q", *extra]
    started = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while entries(out / ".imagenette-cache") < images // 2:
        time.sleep(0.2)
    p.send_signal(signal.SIGKILL)
    p.wait()
    when = time.perf_counter() - started
    time.sleep(2)  # the orphaned workers notice within a second and end
    return when, entries(out / ".imagenette-cache")


def per_image_costs(imagenet: Path, work: Path, size: int, n: int) -> dict[str, float]:
    """CPU microseconds per image, in this process, for the parts the cache adds to a resize."""
    from imagenette_build.cache import CacheStats, open_cache
    from imagenette_build.toolchain import fingerprint
    from imagenette_build.transform import Recipe, make_jpegs

    paths = sorted(p for d in sorted((imagenet / "train").iterdir())[:10] for p in d.iterdir())[:n]
    datas = [p.read_bytes() for p in paths]
    recipe = Recipe()
    rj = json.dumps(recipe.to_json(), sort_keys=True)
    cache = open_cache(work / "micro-cache", fingerprint()).cache
    stats = CacheStats()

    def timed(fn) -> float:
        t = time.process_time()
        fn()
        return (time.process_time() - t) / len(datas) * 1e6

    out: dict[str, float] = {}
    jpegs: list[bytes] = []
    out["resize (decode, resize, encode)"] = timed(lambda: jpegs.extend(make_jpegs(d, (size,), recipe)[0] for d in datas))
    digests: list[bytes] = []
    out["sha256 of the source"] = timed(lambda: digests.extend(hashlib.sha256(d).digest() for d in datas))
    keys = [cache.key(dg, size, rj) for dg in digests]

    def misses():
        for i in range(0, len(keys), 32):
            pending = cache.pending()
            for k, j in zip(keys[i:i + 32], jpegs[i:i + 32]):
                if cache.get(k, stats) is None:
                    pending.put(k, j, stats)
            pending.write()
    out["miss: lookup + write entry (packs of 32)"] = timed(misses)
    warm = cache.renewed()
    out["hit: read + check entry"] = timed(lambda: [warm.get(k, stats) for k in keys])
    one_dir = work / "micro-files"
    one_dir.mkdir(exist_ok=True)

    def per_image():
        for k, j in zip(keys, jpegs):
            tmp, final = one_dir / f".{k.hex()}.tmp", one_dir / k.hex()
            with open(tmp, "wb") as f:
                f.write(j)
            os.replace(tmp, final)
    out["(comparison) write one file per image"] = timed(per_image)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--imagenet", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=Path("/tmp/resume-bench"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size", default="160")
    args = ap.parse_args()
    work = args.work
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    size = ("--size", args.size)

    times: dict[str, list[float]] = {"no cache": [], "empty cache": [], "full cache": []}
    cpus: dict[str, list[float]] = {k: [] for k in times}
    shas = set()
    for i in range(args.runs):  # interleaved, so that a busy moment of the machine hits all three
        for name, out, extra in (("no cache", work / f"nocache{i}", ("--no-cache",)),
                                 ("empty cache", work / f"cold{i}", ("--keep-cache",)),
                                 ("full cache", work / f"cold{i}", ("--keep-cache",))):
            t, r, cpu = build(args.imagenet, out, *size, *extra)
            times[name].append(t)
            cpus[name].append(cpu)
            shas.add(r["sha256"])
            if name != "no cache":
                assert r["cache"]["hits" if name == "full cache" else "misses"] == r["images"], r["cache"]
        shutil.rmtree(work / f"nocache{i}")
    images = r["images"]
    assert len(shas) == 1, shas
    reference = shas.pop()
    full, full_cpu = statistics.median(times["empty cache"]), statistics.median(cpus["empty cache"])

    resume, resume_cpu, kills, hits = [], [], [], []
    for i in range(args.runs):
        out = work / f"killed{i}"
        kills.append(killed_half_way(args.imagenet, out, images, *size))
        t, r, cpu = build(args.imagenet, out, *size)
        assert r["sha256"] == reference, "the rerun's archive differs from the uninterrupted one"
        resume.append(t)
        resume_cpu.append(cpu)
        hits.append(r["cache"]["hits"])
        shutil.rmtree(out)

    cache_bytes = sum(p.stat().st_size for p in (work / "cold0" / ".imagenette-cache").rglob("*") if p.is_file())
    micro = per_image_costs(args.imagenet, work, int(args.size), 1000)
    print(f"corpus: {args.imagenet} ({images} images), --size {args.size}, {args.runs} runs each, interleaved; "
          f"wall time of the whole command and CPU time of it and its workers; {os.cpu_count()} cores (shared)")
    print()
    print("| build | median wall s | runs (s) | median CPU s |")
    print("| --- | --- | --- | --- |")
    for name, ts in times.items():
        print(f"| {name} | {statistics.median(ts):.1f} | {', '.join(f'{x:.1f}' for x in ts)} | "
              f"{statistics.median(cpus[name]):.1f} |")
    nocache, nocache_cpu = statistics.median(times["no cache"]), statistics.median(cpus["no cache"])
    print()
    print(f"cache cost on a first build: wall {full / nocache - 1:+.1%}, CPU {full_cpu / nocache_cpu - 1:+.1%} "
          f"(empty cache vs --no-cache); cache size {cache_bytes / 1e6:.0f} MB for {images} images")
    print(f"rebuild with a full cache: wall {statistics.median(times['full cache']) / nocache:.0%}, CPU "
          f"{statistics.median(cpus['full cache']) / nocache_cpu:.0%} of --no-cache")
    print()
    print(f"resume: killed (SIGKILL) when half the images were cached: at {', '.join(f'{w:.1f}' for w, _ in kills)} s "
          f"(uninterrupted: {full:.1f} s), cache entries then {', '.join(str(n) for _, n in kills)} of {images}")
    print(f"rerun: {', '.join(f'{x:.1f}' for x in resume)} s, median {statistics.median(resume):.1f} s = "
          f"{statistics.median(resume) / full:.0%} of the uninterrupted build's wall time (target <= 60 %), "
          f"CPU {statistics.median(resume_cpu) / full_cpu:.0%}; cache hits {', '.join(str(h) for h in hits)}; "
          f"archive sha256 identical to the uninterrupted one ({reference[:16]}...)")
    print()
    print("per image, CPU us (1000 images, one process):")
    for name, us in micro.items():
        print(f"  {name}: {us:.0f}")


if __name__ == "__main__":
    main()
