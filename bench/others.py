"""What users pick instead of the tool: an OpenCV and a pyvips pipeline, as a user would write them,
over multiprocessing.Pool(2), packed with `tar | pigz`.

    python bench/others.py opencv|pyvips IMAGENET_ROOT FILE_LIST_CSV SIZE OUT.tgz

- opencv: `cv2.imread` (with libjpeg's 1/2 reduced decode where the short side is >= 2 x SIZE),
  `cv2.resize(..., INTER_AREA)` to the script's geometry, `cv2.imencode(".jpg", quality 75)`;
- pyvips: `Image.thumbnail` (shrink-on-load) to the script's width, `write_to_file(Q=75)`.
Both apply EXIF orientation and write 3-channel grayscale, as they do by default; `pixels()` makes
one image the same way in this process, for the PSNR against the published recipe (bench.py).
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import tempfile
from multiprocessing import Pool
from pathlib import Path


def _geometry(w: int, h: int, size: int) -> tuple[int, int]:
    ratio = min(h / size, w / size)
    return int(w / ratio), int(h / ratio)


def opencv_jpeg(src: str, size: int) -> bytes:
    import cv2

    from PIL import Image

    with Image.open(src) as probe:  # the header only: OpenCV has no call for the size alone
        w, h = probe.size
    flag = cv2.IMREAD_REDUCED_COLOR_2 if min(w, h) >= 2 * size else cv2.IMREAD_COLOR
    img = cv2.imread(src, flag)
    out = cv2.resize(img, _geometry(w, h, size), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, 75])
    return buf.tobytes()


def pyvips_jpeg(src: str, size: int) -> bytes:
    import pyvips

    header = pyvips.Image.new_from_file(src)
    width, _ = _geometry(header.width, header.height, size)
    img = pyvips.Image.thumbnail(src, width, height=10_000_000)
    return img.write_to_buffer(".jpg", Q=75)


PIPELINES = {"opencv": opencv_jpeg, "pyvips": pyvips_jpeg}


def _one(job):
    tool, src, dest, size = job
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with open(dest, "wb") as f:
        f.write(PIPELINES[tool](src, size))


def main() -> None:
    tool, root, file_list, size, out = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
    tmp = Path(tempfile.mkdtemp(dir=os.path.dirname(os.path.abspath(out))))
    jobs = []
    with open(file_list) as f:
        for row in csv.DictReader(f):
            split, wnid, name = row["path"].split("/")
            src_split = "val" if name.startswith("ILSVRC2012_val_") else "train"
            jobs.append((tool, str(root / src_split / wnid / name), str(tmp / "imagenette2" / split / wnid / name), size))
    try:
        with Pool(2) as pool:
            pool.map(_one, jobs, chunksize=64)
        with open(out, "wb") as f:
            tar = subprocess.Popen(["tar", "-cf", "-", "-C", str(tmp), "imagenette2"], stdout=subprocess.PIPE)
            subprocess.run(["pigz", "-p", "2"], stdin=tar.stdout, stdout=f, check=True)
            tar.stdout.close()
            if tar.wait():
                sys.exit("tar failed")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
