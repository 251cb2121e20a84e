"""The naive baseline: fast.ai's 2018 resize script over multiprocessing.Pool(2), then tarfile gzip.

Written the way a user would: one task per image, each worker opens the file by path, full decode,
resize with the script's float ratio, save to a folder, then `tarfile` packs and gzips that folder.
Run under pillow-simd it is the published recipe, apart from the source's COM comment, which
Pillow 9.4 and later write back (one of the 40 sample photos has one).

    python bench/naive.py IMAGENET_ROOT FILE_LIST_CSV SIZE OUT.tgz
"""

import csv
import os
import shutil
import sys
import tarfile
import tempfile
from multiprocessing import Pool
from pathlib import Path

from PIL import Image


def resize_one(job):
    src, dest, size = job
    img = Image.open(src)
    w, h = img.size
    ratio = min(h / size, w / size)
    img = img.resize((int(w / ratio), int(h / ratio)), resample=Image.BICUBIC)
    if img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    img.save(dest, quality=75)


def main():
    root, file_list, size, out = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
    tmp = Path(tempfile.mkdtemp(dir=os.path.dirname(os.path.abspath(out))))
    top = tmp / "imagenette2"
    jobs = []
    with open(file_list) as f:
        for row in csv.DictReader(f):
            split, wnid, name = row["path"].split("/")
            src_split = "val" if name.startswith("ILSVRC2012_val_") else "train"
            jobs.append((str(root / src_split / wnid / name), str(top / split / wnid / name), size))
    try:
        with Pool(2) as pool:
            pool.map(resize_one, jobs)
        with tarfile.open(out, "w:gz") as tar:
            tar.add(top, arcname="imagenette2")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
