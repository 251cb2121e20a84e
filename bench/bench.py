"""`make bench`: the tool side by side with a naive script and the decode+encode floor, on one corpus.

    python bench/bench.py [--repeats 3] [--work bench/out] [--photos ../shared/reference/imagenet-samples]
                          [--skip-scale] [--skip-psnr]

Corpus: the whole imagenette2 file list laid out as ImageNet by the sample generator, with the real
photos of --photos (cycled) when that folder exists, synthetic content otherwise (the table says
which). Every variant runs as its own process; CPU time and peak RSS of the largest process come
from getrusage(RUSAGE_CHILDREN) deltas (ru_maxrss is the largest single descendant). Medians of
--repeats runs. Never run in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_PHOTOS = HERE.parent.parent / "shared" / "reference" / "imagenet-samples"


def isolated(cmd: list[str]) -> dict:
    """Wall, CPU (user+sys of all descendants) and peak RSS of the largest descendant of `cmd`,
    measured by a fresh Python wrapper: RUSAGE_CHILDREN's ru_maxrss never goes down, so each run
    needs its own parent."""
    code = ("import json,resource,subprocess,sys,time;"
            "t=time.perf_counter();subprocess.run(sys.argv[1:],check=True,stdout=subprocess.DEVNULL);"
            "w=time.perf_counter()-t;r=resource.getrusage(resource.RUSAGE_CHILDREN);"
            "print(json.dumps({'wall':w,'cpu':r.ru_utime+r.ru_stime,'rss_mb':r.ru_maxrss/1024}))")
    out = subprocess.run([sys.executable, "-c", code, *map(str, cmd)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def median_of(cmd: list[str], repeats: int, cleanup=None) -> dict:
    runs = []
    for _ in range(repeats):
        if cleanup:
            cleanup()
        runs.append(isolated(cmd))
    result = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    result["walls"] = [round(r["wall"], 1) for r in runs]
    return result


def profile(corpus: Path, work: Path, top: int = 15) -> None:
    """Where the time goes: cProfile of an in-process build (--jobs 1, so every stage is in one
    process), sorted by own time. py-spy gives the same picture of a parallel run:
    `py-spy record -f raw --subprocesses -- imagenette-build ...`."""
    import cProfile
    import pstats

    from imagenette_build.cli import main as cli_main

    out = work / "profile.out"
    dist = work / "dist-profile"
    shutil.rmtree(dist, ignore_errors=True)
    argv = ["--imagenet", str(corpus), "--size", "160", "--out", str(dist), "-q", "--jobs", "1"]
    try:
        cProfile.runctx("cli_main(argv)", {"cli_main": cli_main, "argv": argv}, {}, str(out))
    except SystemExit:
        pass
    print("\nprofile of `imagenette-build --size 160 --jobs 1` (in-process), top functions by own time:")
    pstats.Stats(str(out)).sort_stats("tottime").print_stats(top)


def cli(*args) -> list[str]:
    return [sys.executable, "-m", "imagenette_build.cli", *map(str, args)]


def make_corpus(work: Path, photos: Path | None, manifest: str = "imagenette2", per_class: int | None = None) -> Path:
    tag = "photos" if photos else "synthetic"
    root = work / f"corpus-{Path(manifest).stem}-{tag}-{per_class or 'all'}"
    if not (root / ".done").exists():
        shutil.rmtree(root, ignore_errors=True)
        args = ["sample-imagenet", root, "--manifest", manifest, "-q"]
        if photos:
            args += ["--photos", photos]
        if per_class:
            args += ["--per-class", per_class]
        subprocess.run(cli(*args), check=True)
        (root / ".done").touch()
    return root


def corpus_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*.JPEG"))


def psnr_check(photos: list[Path]) -> dict:
    """Scaled vs full decode, same filter, before JPEG encoding: PSNR per image and size."""
    import numpy as np

    from imagenette_build.transform import Recipe, resized_images

    out = {}
    for size in (160, 320):
        values = []
        for p in photos:
            data = p.read_bytes()
            a = resized_images(data, (size,), Recipe(decode="scaled"))[size]
            b = resized_images(data, (size,), Recipe(decode="full"))[size]
            mse = np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2)
            values.append(float("inf") if mse == 0 else 10 * np.log10(255 ** 2 / mse))
        changed = [v for v in values if v != float("inf")]
        out[size] = {"images": len(values), "changed": len(changed),
                     "median_db": statistics.median(values), "worst_db": min(values)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--work", type=Path, default=HERE / "out")
    ap.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    ap.add_argument("--skip-scale", action="store_true", help="skip the 1x/10x memory and time run")
    ap.add_argument("--skip-psnr", action="store_true")
    ap.add_argument("--profile", action="store_true", help="also cProfile an in-process 160 build")
    args = ap.parse_args()
    photos = args.photos if args.photos and args.photos.is_dir() else None
    args.work.mkdir(parents=True, exist_ok=True)

    from imagenette_build import manifest as manifests
    from imagenette_build.toolchain import libjpeg_version, pillow_description

    corpus = make_corpus(args.work, photos)
    file_list = manifests.load("imagenette2").base_dir / "noisy_imagenette.csv"
    n_images = 13394
    src_mb = corpus_bytes(corpus) / 1e6
    dist = args.work / "dist"

    def clean():
        shutil.rmtree(dist, ignore_errors=True)

    rows = {}
    # Every tool run starts with an empty cache (it lives under dist/, removed between runs), so the
    # defaults' rows include writing the cache; the --no-cache row shows what that costs.
    for label, options in (("tool 160", ["--size", "160"]), ("tool 160 --no-cache", ["--size", "160", "--no-cache"]),
                           ("tool 320", ["--size", "320"]), ("tool 160+320", ["--size", "160", "--size", "320"]),
                           ("tool full", ["--size", "full"])):
        rows[label] = median_of(cli("--imagenet", corpus, *options, "--out", dist, "-q"), args.repeats, clean)
        rows[label]["archive_mb"] = sum(p.stat().st_size for p in dist.glob("*.tgz")) / 1e6
    for size in (160, 320):
        out_tgz = args.work / f"naive-{size}.tgz"
        rows[f"naive {size}"] = median_of([sys.executable, str(HERE / "naive.py"), corpus, file_list, size, out_tgz],
                                          args.repeats)
        rows[f"naive {size}"]["archive_mb"] = out_tgz.stat().st_size / 1e6
    rows["floor 160"] = median_of([sys.executable, str(HERE / "floor.py"), corpus, file_list, "160"], args.repeats)
    rows["floor 160"]["archive_mb"] = 0.0

    print(f"\nimagenette2, {n_images} images, {'real photos from ' + str(photos) if photos else 'SYNTHETIC content'}"
          f" ({src_mb:.0f} MB of JPEG); {platform.machine()}, {os.cpu_count()} cores, "
          f"{pillow_description()}, {libjpeg_version()}; median of {args.repeats} runs\n")
    print("| run | wall s (median) | runs | CPU s | images/s | peak RSS MB | archive MB |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: |")
    for label, r in rows.items():
        ips = n_images / r["wall"]
        runs = " ".join(f"{w:.1f}" for w in r["walls"])
        print(f"| {label} | {r['wall']:.1f} | {runs} | {r['cpu']:.1f} | {ips:.0f} | {r['rss_mb']:.0f} | "
              f"{r['archive_mb']:.1f} |")
    t = {k: v["wall"] for k, v in rows.items()}
    c = {k: v["cpu"] for k, v in rows.items()}
    print()
    print(f"- tool 160 / naive 160: {t['tool 160'] / t['naive 160']:.2f} wall, "
          f"{c['tool 160'] / c['naive 160']:.2f} CPU (target <= 0.6)")
    print(f"- tool 160 --no-cache / naive 160: {t['tool 160 --no-cache'] / t['naive 160']:.2f} wall, "
          f"{c['tool 160 --no-cache'] / c['naive 160']:.2f} CPU (the cache's cost on a first build: "
          f"{t['tool 160'] / t['tool 160 --no-cache'] - 1:+.0%} wall)")
    print(f"- tool 160 / floor 160: {t['tool 160'] / t['floor 160']:.2f} wall, "
          f"{c['tool 160'] / c['floor 160']:.2f} CPU (target <= 1.25)")
    print(f"- tool 160+320 / (naive 160 + naive 320): {t['tool 160+320'] / (t['naive 160'] + t['naive 320']):.2f} "
          f"wall, {c['tool 160+320'] / (c['naive 160'] + c['naive 320']):.2f} CPU (target <= 0.5)")
    print(f"- tool full: {src_mb / t['tool full']:.0f} MB/s of source data (target >= 250)")

    if not args.skip_psnr:
        sample = sorted(photos.glob("*.JPEG")) if photos else sorted(corpus.rglob("*.JPEG"))[:200]
        for size, r in psnr_check(sample).items():
            print(f"- scaled vs full decode at {size}: {r['changed']} of {r['images']} images changed, "
                  f"median {r['median_db']:.1f} dB, worst {r['worst_db']:.1f} dB (targets >= 45 / >= 36)")

    if not args.skip_scale:
        # Memory must be flat and time linear in the number of images: a synthetic corpus of the
        # imagewoof2 classes (policy imagenet) at 1x and 10x the train images per class.
        from imagenette_build.newdataset import NewManifest

        scale_manifest = args.work / "scale.toml"
        scale_manifest.write_text(NewManifest("scale", manifests.load("imagewoof2").wnids, "imagenet").to_toml())
        scale_rows = {}
        for label, per_class in (("1x", 200), ("10x", 2000)):
            root = make_corpus(args.work, None, str(scale_manifest), per_class)
            scale_rows[label] = median_of(cli("--imagenet", root, "--manifest", scale_manifest, "--size", "160",
                                              "--out", dist, "-q"), 1, clean)
            scale_rows[label]["images"] = sum(1 for _ in root.rglob("*.JPEG")) - 10  # less the decoys
        one, ten = scale_rows["1x"], scale_rows["10x"]
        per_image = (ten["wall"] / ten["images"]) / (one["wall"] / one["images"])
        print(f"- scale (synthetic): {one['images']} images {one['wall']:.1f} s, peak RSS {one['rss_mb']:.0f} MB; "
              f"{ten['images']} images {ten['wall']:.1f} s, peak RSS {ten['rss_mb']:.0f} MB; time per image "
              f"10x/1x {per_image:.2f} (target <= 1.05), RSS 10x/1x {ten['rss_mb'] / one['rss_mb']:.2f}")

    if args.profile:
        profile(corpus, args.work)


if __name__ == "__main__":
    main()
