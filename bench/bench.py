"""`make bench`: the tool side by side with the naive script, the stage floor, OpenCV and pyvips.

    python bench/bench.py [--repeats 3] [--work bench/out] [--photos ../shared/reference/imagenet-samples]
                          [--stock-python PATH] [--skip-scale] [--skip-psnr] [--skip-budget] [--profile]

Run it in an environment with pillow-simd (the naive script's and the published recipe's Pillow),
OpenCV and pyvips (`make bench` makes .venv-simd so); --stock-python names an environment with stock
Pillow, whose build is set against the pillow-simd one.

Corpus: the whole imagenette2 file list laid out as ImageNet by the sample generator, with the real
photos of --photos (cycled) when that folder exists, synthetic content otherwise (the table says
which). Every variant runs as its own process; CPU time and peak RSS of the largest process come
from getrusage(RUSAGE_CHILDREN) deltas (ru_maxrss is the largest single descendant). --repeats
rounds, each running every variant once, in turn, with the corpus read into the page cache first;
medians per variant, and ratios taken within each round (a machine that drifts moves both sides of a
ratio alike). Never run in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_PHOTOS = HERE.parent.parent / "shared" / "reference" / "imagenet-samples"
BUDGET_IMAGES = 2048  # corpus images timed stage by stage (the real photos cycled: their mix)
BUDGET = "budget 160"  # the variant that runs budget.py once a round


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


def warm(files: list[Path]) -> None:
    """Read every source file, so that each run finds the corpus in the page cache (this machine's
    kernel reclaims idle page cache within minutes)."""
    for path in files:
        with open(path, "rb", buffering=0) as f:
            while f.read(1 << 20):
                pass


DROP_CACHES = Path("/proc/sys/vm/drop_caches")


def can_drop_caches() -> bool:
    return os.access(DROP_CACHES, os.W_OK)


def drop_caches() -> None:
    """Empty the page cache (Linux, root): the run reads the corpus from the disk, as a build of an
    ImageNet copy that does not fit in memory does."""
    os.sync()
    DROP_CACHES.write_text("3\n")


def interleaved(variants: dict[str, tuple[list[str], object, object]], repeats: int, files: list[Path]) -> dict:
    """Run every variant once per round, in turn, `repeats` rounds: a machine that speeds up or slows
    down during the benchmark moves every variant alike, and the ratios are taken within a round.
    `variants`: label -> (command, cleanup before each run or None, output size in bytes after a run,
    or None when it writes no archive).
    Each run starts with the corpus warmed, but a label ending in "(cold)": with the page cache
    emptied. Returns label -> {"wall", "cpu", "rss_mb", "archive_mb"
    (medians), "walls", "cpus" (per round)}."""
    runs: dict[str, list[dict]] = {label: [] for label in variants}
    for _ in range(repeats):
        for label, (cmd, cleanup, output_bytes) in variants.items():
            if cleanup:
                cleanup()
            if label.endswith("(cold)"):
                drop_caches()
            else:
                warm(files)
            measured = isolated(cmd)
            size = output_bytes()  # after the run: the cleanup above removed the last one's
            runs[label].append({**measured, "archive_mb": None if size is None else size / 1e6})
    result = {}
    for label, rs in runs.items():
        result[label] = {k: statistics.median(r[k] for r in rs) for k in rs[0] if rs[0][k] is not None}
        result[label]["walls"] = [r["wall"] for r in rs]
        result[label]["cpus"] = [r["cpu"] for r in rs]
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


def cli(*args, python: str = sys.executable) -> list[str]:
    return [python, "-m", "imagenette_build.cli", *map(str, args)]


def others_available() -> list[str]:
    """The pipelines of others.py whose libraries (and pigz) are installed here."""
    import importlib.util

    if not shutil.which("pigz"):
        return []
    return [name for name, module in (("opencv", "cv2"), ("pyvips", "pyvips")) if importlib.util.find_spec(module)]


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


def psnr_check(photos: list[Path]) -> dict:
    """Scaled vs full decode, same filter, before JPEG encoding: PSNR per image and size."""
    import numpy as np

    from imagenette_build.transform import Recipe, resize_pixels

    out = {}
    for size in (160, 320):
        values = []
        for p in photos:
            data = p.read_bytes()
            a = resize_pixels(data, (size,), Recipe(decode="scaled"))[size]
            b = resize_pixels(data, (size,), Recipe(decode="full"))[size]
            mse = np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2)
            values.append(float("inf") if mse == 0 else 10 * np.log10(255 ** 2 / mse))
        changed = [v for v in values if v != float("inf")]
        out[size] = {"images": len(values), "changed": len(changed),
                     "median_db": statistics.median(values), "worst_db": min(values)}
    return out


def budget_rounds(passes: list[dict], floor_cpus: list[float], tool_cpus: list[float], n_images: int) -> dict:
    """Round by round, ms of CPU per image: decode + resize + encode alone in one process
    ("stages"), the tool's worker task with its cache ("task"), the stage floor on 2 processes
    ("floor") and the whole tool build ("build"). Each budget pass ran in its round."""
    return {"stages": [p["decode"] + p["resize"] + p["encode"] for p in passes],
            "task": [p["task, cache"] for p in passes],
            "floor": [cpu * 1000 / n_images for cpu in floor_cpus],
            "build": [cpu * 1000 / n_images for cpu in tool_cpus]}


def print_budget(passes: list[dict], rows: dict, n_images: int) -> None:
    """Per image: the stages and the worker task (medians of the rounds' passes) beside the floor's
    and the whole build's CPU, so that what the tool adds is visible where it is added."""
    med = {k: statistics.median(p[k] for p in passes) for k in passes[0]}
    compute = med["decode"] + med["resize"] + med["encode"]
    per = budget_rounds(passes, rows["floor 160"]["cpus"], rows["tool 160"]["cpus"], n_images)

    def rounds(xs: list[float]) -> str:
        return f"{statistics.median(xs):.2f} (rounds {' '.join(f'{x:.2f}' for x in xs)})"
    print(f"- per image at 160, one process, {med['images']:.0f} corpus images, one pass a round (ms, medians): "
          f"decode {med['decode']:.2f}, resize {med['resize']:.2f}, encode {med['encode']:.2f} = {compute:.2f}; "
          f"the tool's worker task {med['task']:.2f} without the cache, {med['task, cache']:.2f} with it "
          f"({med['task'] - compute:+.2f} and {med['task, cache'] - compute:+.2f} beside decode, resize and encode)")
    print(f"- CPU per image on 2 processes: the stage floor {rounds(per['floor'])} ms, the whole tool 160 build "
          f"{rounds(per['build'])} ms (building process, worker start, cache, archive and hashes included)")


def others_psnr(photos: list[Path], size: int) -> dict:
    """Each pipeline of others.py against the published recipe on the sample photos: the images
    whose size differs, and the PSNR of the rest (RGB)."""
    import io

    import numpy as np
    from PIL import Image

    sys.path.insert(0, str(HERE))
    import others

    from imagenette_build.transform import Recipe, make_jpegs

    def rgb(data: bytes):
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float64)

    out = {}
    for name, make in others.PIPELINES.items():
        values, other_size = [], 0
        for p in photos:
            ours = rgb(make_jpegs(p.read_bytes(), (size,), Recipe())[0])
            theirs = rgb(make(str(p), size))
            if ours.shape != theirs.shape:
                other_size += 1
                continue
            mse = float(np.mean((ours - theirs) ** 2))
            values.append(float("inf") if mse == 0 else 10 * np.log10(255 ** 2 / mse))
        out[name] = {"images": len(photos), "other_size": other_size,
                     "median_db": statistics.median(values) if values else None,
                     "worst_db": min(values) if values else None}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--work", type=Path, default=HERE / "out")
    ap.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    ap.add_argument("--skip-scale", action="store_true", help="skip the 1x/10x memory and time run")
    ap.add_argument("--skip-psnr", action="store_true")
    ap.add_argument("--skip-budget", action="store_true", help="skip the per-image stage times")
    ap.add_argument("--profile", action="store_true", help="also cProfile an in-process 160 build")
    ap.add_argument("--stock-python", help="the python of an environment with stock Pillow (its build is a row)")
    ap.add_argument("--only", help="run only these variants (comma-separated labels, as in the table)")
    args = ap.parse_args()
    photos = args.photos if args.photos and args.photos.is_dir() else None
    args.work.mkdir(parents=True, exist_ok=True)

    from imagenette_build import manifest as manifests
    from imagenette_build.toolchain import libjpeg_version, pillow_description, pillow_flavour

    if pillow_flavour() != "pillow-simd":
        print("bench: warning: this environment has stock Pillow: the naive script and the floor are not "
              "pillow-simd's here (make bench runs in .venv-simd)", file=sys.stderr)

    corpus = make_corpus(args.work, photos)
    file_list = manifests.load("imagenette2").base_dir / "noisy_imagenette.csv"
    n_images = 13394
    sources = sorted(corpus.rglob("*.JPEG"))
    src_mb = sum(p.stat().st_size for p in sources) / 1e6
    dist = args.work / "dist"

    def clean():
        shutil.rmtree(dist, ignore_errors=True)
    # Every tool run starts with an empty cache (it lives under dist/, removed before each run), so the
    # defaults' rows include writing the cache; the --no-cache row shows what that costs.
    variants: dict[str, tuple[list[str], object, object]] = {}

    def archives() -> int:
        return sum(p.stat().st_size for p in dist.glob("*.tgz"))

    for label, options in (("tool 160", ["--size", "160"]), ("tool 160 --no-cache", ["--size", "160", "--no-cache"]),
                           ("tool 320", ["--size", "320"]), ("tool 160+320", ["--size", "160", "--size", "320"]),
                           ("tool 160 --decode scaled", ["--size", "160", "--decode", "scaled"]),
                           ("tool full", ["--size", "full"])):
        variants[label] = (cli("--imagenet", corpus, *options, "--out", dist, "-q"), clean, archives)
    if args.stock_python:
        variants["tool 160 (stock Pillow)"] = (cli("--imagenet", corpus, "--size", "160", "--out", dist, "-q",
                                                  python=args.stock_python), clean, archives)
    if can_drop_caches():  # the read-ahead's worth: the same builds with the corpus on the disk only
        for label, options in (("tool 160 (cold)", ["--size", "160"]), ("tool full (cold)", ["--size", "full"])):
            variants[label] = (cli("--imagenet", corpus, *options, "--out", dist, "-q"), clean, archives)
    budget_jsonl = args.work / "budget.jsonl"
    budget_jsonl.unlink(missing_ok=True)
    for size in (160, 320):
        out_tgz = args.work / f"naive-{size}.tgz"
        variants[f"naive {size}"] = ([sys.executable, str(HERE / "naive.py"), corpus, file_list, size, out_tgz], None,
                                     lambda path=out_tgz: path.stat().st_size)
        if size == 160 and not args.skip_budget:
            variants[BUDGET] = ([sys.executable, str(HERE / "budget.py"), corpus, size, BUDGET_IMAGES, budget_jsonl],
                                None, lambda: None)
    variants["floor 160"] = ([sys.executable, str(HERE / "floor.py"), corpus, file_list, "160"], None, lambda: None)
    for tool in others_available():
        out_tgz = args.work / f"{tool}-160.tgz"
        variants[f"{tool} 160"] = ([sys.executable, str(HERE / "others.py"), tool, corpus, file_list, 160, out_tgz],
                                   None, lambda path=out_tgz: path.stat().st_size)
    if args.only:
        wanted = [label.strip() for label in args.only.split(",")]
        unknown = [label for label in wanted if label not in variants]
        if unknown:
            sys.exit(f"bench: unknown variant {unknown[0]!r} (the variants: {', '.join(variants)})")
        variants = {label: variants[label] for label in wanted}
    rows = interleaved(variants, args.repeats, sources)

    print(f"\nimagenette2, {n_images} images, {'real photos from ' + str(photos) if photos else 'SYNTHETIC content'}"
          f" ({src_mb:.0f} MB of JPEG); {platform.machine()}, {os.cpu_count()} cores, "
          f"{pillow_description()}, {libjpeg_version()}; {args.repeats} rounds, every variant once per round, "
          f"in turn, the corpus read into the page cache before each run (cold rows: the page cache emptied instead)\n")
    # A run's CPU floor: its CPU time (user + system of every process) spread over the cores, the
    # shortest wall time that CPU could take; wall / floor is the time spent with a core idle.
    cores = os.cpu_count() or 1
    print(f"| run | wall s (median) | runs | CPU s | CPU floor s (CPU / {cores} cores) | wall / floor | images/s "
          "| peak RSS MB | archive MB |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, r in rows.items():
        if label == BUDGET:  # not a build: its figures are the budget lines below
            continue
        ips = n_images / r["wall"]
        runs = " ".join(f"{w:.1f}" for w in r["walls"])
        archive = f"{r['archive_mb']:.1f}" if "archive_mb" in r else "—"
        idle = statistics.median(w / (c / cores) for w, c in zip(r["walls"], r["cpus"]))
        print(f"| {label} | {r['wall']:.1f} | {runs} | {r['cpu']:.1f} | {r['cpu'] / cores:.1f} | {idle:.2f} | {ips:.0f} "
              f"| {r['rss_mb']:.0f} | {archive} |")

    def ratio(num: str, *den: str, key: str = "walls") -> str:
        """Median over rounds of the ratio within each round, and the ratio of the medians."""
        if any(label not in rows for label in (num, *den)):
            return "— (not run)"
        per_round = [rows[num][key][i] / sum(rows[d][key][i] for d in den) for i in range(args.repeats)]
        med = rows[num][key[:-1]] / sum(rows[d][key[:-1]] for d in den)
        return f"{statistics.median(per_round):.2f} (rounds {' '.join(f'{x:.2f}' for x in per_round)}; medians {med:.2f})"

    print()
    print("ratios: median of the per-round ratios (each round's ratio; ratio of the medians)")
    print(f"- tool 160 / naive 160: wall {ratio('tool 160', 'naive 160')}, CPU {ratio('tool 160', 'naive 160', key='cpus')} "
          "(target <= 0.95)")
    print(f"- tool 160 / floor 160: wall {ratio('tool 160', 'floor 160')}, CPU {ratio('tool 160', 'floor 160', key='cpus')} "
          "(target <= 1.05)")
    print(f"- tool 160+320 / (naive 160 + naive 320): wall {ratio('tool 160+320', 'naive 160', 'naive 320')}, "
          f"CPU {ratio('tool 160+320', 'naive 160', 'naive 320', key='cpus')} (target <= 0.55)")
    if "tool 160 (stock Pillow)" in rows:
        print(f"- stock Pillow / pillow-simd, tool 160: wall {ratio('tool 160 (stock Pillow)', 'tool 160')}, "
              f"CPU {ratio('tool 160 (stock Pillow)', 'tool 160', key='cpus')} (target <= 1.25)")
    print(f"- tool 160 --no-cache / tool 160: wall {ratio('tool 160 --no-cache', 'tool 160')} (the cache's cost on a "
          f"first build); tool 160 --decode scaled / tool 160: wall {ratio('tool 160 --decode scaled', 'tool 160')}")
    tool_rss = max((r["rss_mb"] for label, r in rows.items() if label.startswith("tool")), default=0)
    print(f"- peak RSS of the largest tool process: {tool_rss:.0f} MB (target <= 250)")
    for tool in others_available():
        print(f"- {tool} 160 / tool 160: wall {ratio(f'{tool} 160', 'tool 160')}")
    if "tool full" in rows:
        full_rates = sorted(src_mb / w for w in rows["tool full"]["walls"])
        print(f"- tool full: {src_mb / rows['tool full']['wall']:.0f} MB/s of source data, median (runs "
              f"{' '.join(f'{x:.0f}' for x in full_rates)}) (target >= 250)")
    if "tool 160 (cold)" in rows and "tool full (cold)" in rows:
        print(f"- page cache emptied before the run / corpus in the page cache: 160 "
              f"{ratio('tool 160 (cold)', 'tool 160')}, full {ratio('tool full (cold)', 'tool full')}; "
              f"full from the disk: {src_mb / rows['tool full (cold)']['wall']:.0f} MB/s")
    else:
        print(f"- no cold-cache rows: {DROP_CACHES} is not writable (needs root)")

    if not args.skip_budget and BUDGET in rows:
        print_budget([json.loads(line) for line in budget_jsonl.read_text().splitlines()], rows, n_images)

    if not args.skip_psnr:
        sample = sorted(photos.glob("*.JPEG")) if photos else sorted(corpus.rglob("*.JPEG"))[:200]
        for tool, r in others_psnr(sample, 160).items():
            print(f"- {tool} against the published recipe at 160, {r['images']} images: {r['other_size']} of another "
                  f"size; the rest median {r['median_db']:.1f} dB, worst {r['worst_db']:.1f} dB")
        for size, r in psnr_check(sample).items():
            print(f"- scaled vs full decode at {size}: {r['changed']} of {r['images']} images changed, "
                  f"median {r['median_db']:.1f} dB, worst {r['worst_db']:.1f} dB (--decode scaled, an opt-in)")

    if not args.skip_scale:
        # Memory must be flat and time linear in the number of images: a synthetic corpus of the
        # imagewoof2 classes (policy imagenet) at 1x and 10x the train images per class.
        from imagenette_build.newdataset import NewManifest

        scale_manifest = args.work / "scale.toml"
        scale_manifest.write_text(NewManifest("scale", manifests.load("imagewoof2").wnids, "imagenet").to_toml())
        roots = {label: make_corpus(args.work, None, str(scale_manifest), per_class)
                 for label, per_class in (("1x", 200), ("10x", 2000))}
        scale_runs = {label: (cli("--imagenet", root, "--manifest", scale_manifest, "--size", "160", "--out", dist,
                                  "-q"), clean, archives) for label, root in roots.items()}
        scale_rows = interleaved(scale_runs, 1, [p for root in roots.values() for p in root.rglob("*.JPEG")])
        for label, root in roots.items():
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
