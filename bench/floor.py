"""The stage floor: every image through the tool's own decode, resize and encode, on 2 processes
with large chunks, and nothing else: no archive, no cache, no hashing, no pickled results. What
the tool spends above it is its overhead.

    python bench/floor.py IMAGENET_ROOT FILE_LIST_CSV SIZE
"""

import csv
import sys
from multiprocessing import Pool
from pathlib import Path

from imagenette_build.transform import Recipe, decode_for, encode, resize


def decode_resize_encode(path_and_size):
    path, size = path_and_size
    with open(path, "rb") as f:
        data = f.read()
    recipe = Recipe()
    img, box, target = decode_for(data, size, recipe)
    return len(encode(resize(img, target, recipe.filter, box), recipe.quality))


def main():
    root, file_list, size = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    jobs = []
    with open(file_list) as f:
        for row in csv.DictReader(f):
            _, wnid, name = row["path"].split("/")
            src_split = "val" if name.startswith("ILSVRC2012_val_") else "train"
            jobs.append((str(root / src_split / wnid / name), size))
    with Pool(2) as pool:
        total = sum(pool.imap_unordered(decode_resize_encode, jobs, chunksize=64))
    print(total)


if __name__ == "__main__":
    main()
