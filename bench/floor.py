"""The floor (issue 5's definition): decode every image with the tool's own decode policy for the
target size (DCT-scaled where the tool would scale) and encode it again at that decoded size, on 2
processes with large chunks; no resize, no archive. It is the cost of the unavoidable decode plus an
encode; the tool encodes smaller images, so it can come in under it.

    python bench/floor.py IMAGENET_ROOT FILE_LIST_CSV SIZE
"""

import csv
import sys
from multiprocessing import Pool
from pathlib import Path

from imagenette_build.transform import Recipe, decoded, encode


def decode_encode(path_and_size):
    path, size = path_and_size
    with open(path, "rb") as f:
        data = f.read()
    return len(encode(decoded(data, size)[0], Recipe().quality))


def main():
    root, file_list, size = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    jobs = []
    with open(file_list) as f:
        for row in csv.DictReader(f):
            _, wnid, name = row["path"].split("/")
            src_split = "val" if name.startswith("ILSVRC2012_val_") else "train"
            jobs.append((str(root / src_split / wnid / name), size))
    with Pool(2) as pool:
        total = sum(pool.imap_unordered(decode_encode, jobs, chunksize=64))
    print(total)


if __name__ == "__main__":
    main()
