"""One pass of the per-image budget: in this one process, on a stride of the corpus's images, the
tool's own decode, resize and encode timed apart, and its whole worker task (`process_batch` in
batches of 32, reading the files) without and with an empty cache. bench.py runs one pass in each
round, beside the naive run whose time sets the allowance, so that a machine that drifts moves both
alike. Appends one JSON line of ms per image to OUT_JSONL.

    python bench/budget.py IMAGENET_ROOT SIZE COUNT OUT_JSONL
"""

import json
import sys
import tempfile
import time
from pathlib import Path


def sample(root: Path, count: int) -> list[Path]:
    """`count` of the corpus's images, spread evenly over its sorted list (so over every class and
    over the cycled photos' mix)."""
    sources = sorted(root.rglob("*.JPEG"))
    return sources[::max(1, len(sources) // count)][:count]


def stage_budget(files: list[Path], size: int, work: Path) -> dict:
    """Per image, in this one process (ms): decode, resize, encode and the worker task without
    ("task") and with ("task, cache") an empty cache. What the task spends besides decode, resize and
    encode is the tool's overhead in the workers."""
    from imagenette_build.cache import open_cache
    from imagenette_build.toolchain import fingerprint
    from imagenette_build.sources import SourceRef
    from imagenette_build.transform import Recipe, decode_for, encode, resize
    from imagenette_build.worker import Task, process_batch

    recipe = Recipe()
    datas = [p.read_bytes() for p in files]
    spent = {"decode": 0.0, "resize": 0.0, "encode": 0.0}
    for data in datas:
        t0 = time.perf_counter()
        img, box, target = decode_for(data, size, recipe)
        t1 = time.perf_counter()
        img = resize(img, target, recipe.filter, box)
        t2 = time.perf_counter()
        encode(img, recipe.quality)
        t3 = time.perf_counter()
        spent["decode"] += t1 - t0
        spent["resize"] += t2 - t1
        spent["encode"] += t3 - t2
    refs = [SourceRef(str(p)) for p in files]
    for name in ("task", "task, cache"):
        with tempfile.TemporaryDirectory(dir=work) as tmp:
            cache = open_cache(Path(tmp), fingerprint()).cache if name == "task, cache" else None
            t0 = time.perf_counter()
            for i in range(0, len(refs), 32):
                process_batch(Task(refs[i:i + 32], (size,), recipe, cache))
            spent[name] = time.perf_counter() - t0
    return {name: total * 1000 / len(files) for name, total in spent.items()}


def main() -> None:
    root, size, count, out = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    files = sample(root, count)
    times = stage_budget(files, size, out.parent)
    with open(out, "a") as f:
        f.write(json.dumps({"images": len(files), **times}) + "\n")


if __name__ == "__main__":
    main()
