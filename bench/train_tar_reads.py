"""What a build of imagenette2's ten classes reads from ILSVRC2012_img_train.tar.

    python bench/train_tar_reads.py [--per-class 10] [--work bench/out/train-tar] [--jobs 2]

A synthetic ILSVRC2012_img_train.tar of all 1000 class tars (`sample-imagenet --manifest
imagenet-1k --per-class N --layout ilsvrc-tars`, written once and kept in --work), and a manifest
of imagenette2's ten classes with ILSVRC's own split (`new-manifest --split imagenet`: imagenette2's
file list names images the sample does not have; the reading is the same). The build (`--size 160
--no-cache`: a cache hit would read nothing) runs under `strace -f`: every read, pread64, lseek and
fadvise64 on the train tar, by the building process and by its workers, is summed and placed in
the tar's layout, as Python's tarfile reads it: an outer header, a header in one of the ten class
tars, an image of one of them, or anything else. Needs strace. Never run in CI.
"""

from __future__ import annotations

import argparse
import io
import re
import shutil
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLI = [sys.executable, "-m", "imagenette_build.cli"]
TRAIN_TAR = "ILSVRC2012_img_train.tar"
CALL = re.compile(r"^(\w+)\((\d+)<([^>]*)>, (.*)\)\s+= (-?\d+)")


def corpus(work: Path, per_class: int, jobs: int) -> Path:
    root = work / f"tars-{per_class}"
    if not (root / ".complete").exists():
        shutil.rmtree(root, ignore_errors=True)
        print(f"writing {root} ...", file=sys.stderr, flush=True)
        subprocess.run([*CLI, "sample-imagenet", root, "--manifest", "imagenet-1k", "--per-class", str(per_class),
                        "--layout", "ilsvrc-tars", "--jobs", str(jobs), "-q"], check=True)
        (root / ".complete").touch()
    return root


def ten_classes_manifest(work: Path) -> tuple[Path, list[str]]:
    from imagenette_build import manifest as manifests

    wnids = list(manifests.load("imagenette2").wnids)
    path = work / "imagenette2-classes.toml"
    args = [a for w in wnids for a in ("--wnid", w)]
    subprocess.run([*CLI, "new-manifest", "imagenette2-classes", *args, "--split", "imagenet", "--out", path,
                    "--force"], check=True, capture_output=True)
    return path, wnids


def layout(tar_path: Path, wnids: list[str]) -> dict:
    """The outer headers' offsets (up to the last wanted class tar, in the tar's order), and for
    each wanted class tar its headers' offsets and its images' (offset, size), in the outer file."""
    outer, wanted = [], {}
    with open(tar_path, "rb") as f, tarfile.open(fileobj=f, mode="r:") as tar:
        for member in tar:
            outer.append(member.offset)
            if member.name.removesuffix(".tar") in wnids:
                f.seek(member.offset_data)
                inner = tarfile.open(fileobj=io.BytesIO(f.read(member.size)), mode="r:")
                base = member.offset_data
                wanted[member.name] = {
                    "range": (member.offset, member.offset_data + member.size),
                    "headers": {base + m.offset for m in inner},
                    "images": {(base + m.offset_data, m.size) for m in inner if m.isfile()},
                }
    last = max(wanted[k]["range"][1] for k in wanted)
    return {"outer": [o for o in outer if o < last], "outer_all": len(outer), "wanted": wanted}


def traced_reads(log_prefix: Path) -> list[tuple[int, int, str]]:
    """(offset, bytes, call) of every read of the train tar, from strace's per-process logs; the
    offset of a plain read is the last lseek's plus what was read since, per process and fd."""
    reads = []
    for log in sorted(log_prefix.parent.glob(log_prefix.name + ".*")):
        pos: dict[int, int] = {}
        for line in log.read_text(errors="replace").splitlines():
            m = CALL.match(line)
            if not m or not m.group(3).endswith(TRAIN_TAR):
                continue
            call, fd, args, ret = m.group(1), int(m.group(2)), m.group(4), int(m.group(5))
            if call == "lseek" and ret >= 0:
                pos[fd] = ret
            elif call == "read" and ret > 0:
                reads.append((pos.get(fd, -1), ret, call))
                pos[fd] = pos.get(fd, 0) + ret
            elif call == "pread64" and ret > 0:
                reads.append((int(args.rsplit(",", 1)[1]), ret, call))
            elif call == "fadvise64":
                offset, length = (int(x) for x in args.split(",")[:2])
                reads.append((offset, length, "fadvise64"))
    return reads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-class", type=int, default=10)
    ap.add_argument("--work", type=Path, default=HERE / "out" / "train-tar")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    if shutil.which("strace") is None:
        sys.exit("needs strace")
    args.work.mkdir(parents=True, exist_ok=True)
    root = corpus(args.work, args.per_class, args.jobs)
    manifest, wnids = ten_classes_manifest(args.work)
    out, logs = args.work / "out", args.work / "strace"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir()
    subprocess.run(["strace", "-f", "-ff", "-qq", "-y", "-s", "0", "-e", "signal=none",
                    "-e", "trace=read,pread64,readv,preadv,preadv2,lseek,fadvise64", "-o", str(logs / "build"),
                    *CLI, "--imagenet", str(root), "--manifest", str(manifest), "--size", "160", "--out", str(out),
                    "--jobs", str(args.jobs), "--no-cache", "--quiet"], check=True, stdout=subprocess.DEVNULL)
    tar_path = root / TRAIN_TAR
    shape = layout(tar_path, wnids)
    outer = set(shape["outer"])
    headers = set().union(*(w["headers"] for w in shape["wanted"].values()))
    images = set().union(*(w["images"] for w in shape["wanted"].values()))
    ranges = [w["range"] for w in shape["wanted"].values()]
    kinds: Counter = Counter()
    calls: Counter = Counter()
    for offset, n, call in traced_reads(logs / "build"):
        if call == "fadvise64":
            kind = "prefetch hint (an image's range)" if (offset, n) in images else "prefetch hint (other)"
            kinds[kind] += n
            calls[kind] += 1
            continue
        if (offset, n) in images:
            kind = "images of the ten class tars"
        elif n == 512 and offset in headers:
            kind = "headers in the ten class tars"
        elif n == 512 and offset in outer:
            kind = "outer headers (class tars in order, up to the last wanted)"
        elif n == 512 and any(lo <= offset < hi for lo, hi in ranges):
            kind = "end-of-archive blocks of the ten class tars"
        else:
            kind = f"other ({call} of {n} at {offset})"
        kinds[kind] += n
        calls[kind] += 1
    size = tar_path.stat().st_size
    ten = sum(w["range"][1] - w["range"][0] for w in shape["wanted"].values())
    read = sum(n for k, n in kinds.items() if not k.startswith("prefetch"))
    print(f"{tar_path}: {size:,} bytes, {shape['outer_all']} class tars; the ten class tars (headers and data): "
          f"{ten:,} bytes")
    print(f"read from it: {read:,} bytes ({100 * read / size:.2f} % of the tar; {read / ten:.3f} of the ten class tars)")
    for kind, n in sorted(kinds.items(), key=lambda kv: -kv[1]):
        print(f"  {kind}: {n:,} bytes in {calls[kind]:,} calls")
    print(f"outer headers before the last wanted class tar: {len(shape['outer']):,} of {shape['outer_all']:,}")


if __name__ == "__main__":
    main()
