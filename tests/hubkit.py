"""A tiny dataset folder as the build writes it, for the card and Croissant tests: parquet shards
with the schema of formats/parquet.py (the `huggingface` feature metadata) plus the provenance
columns, and the `info` dict that card.py and croissant.py take."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

from PIL import Image

from imagenette_build.leakage import of_members

CLASSES = [{"index": 0, "wnid": "n01440764", "name": "tench"},
           {"index": 1, "wnid": "n02102040", "name": "English springer"},
           {"index": 2, "wnid": "n03888257", "name": "parachute"}]
NOISY = ["noisy_labels_0", "noisy_labels_5"]
PROVENANCE = ["source_split", "source_file", "source_sha256", "member", "member_sha256"]
COLUMNS = ["image", "label", "wnid"] + NOISY + PROVENANCE
# (split, shards, rows per shard); unsup is unlabelled (label -1)
LAYOUT = [("train", 2, 3), ("val", 1, 4), ("unsup", 1, 2)]


def _jpeg(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (12 + seed % 5, 10), (seed * 40 % 256, seed * 7 % 256, 99)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def rows() -> list[dict]:
    """Every row, in member order within each split (splits in LAYOUT's order)."""
    out, k = [], 0
    for split, shards, per in LAYOUT:
        for i in range(shards * per):
            c = CLASSES[k % len(CLASSES)]
            source = f"ILSVRC2012_val_{k + 1:08d}.JPEG" if k % 3 == 0 else f"{c['wnid']}_{100 + k}.JPEG"
            member = f"{split}/{c['wnid']}/{source}" if split != "unsup" else f"unsup/{source}"
            data = _jpeg(k)
            label = c["index"] if split != "unsup" else -1
            out.append({"split": split, "image": {"bytes": data, "path": member}, "label": label, "wnid": c["wnid"],
                        "noisy_labels_0": label, "noisy_labels_5": label if i % 2 or label < 0 else (label + 1) % 3,
                        "source_split": "val" if source.startswith("ILSVRC2012_val_") else "train",
                        "source_file": source, "source_sha256": hashlib.sha256(b"source" + data).hexdigest(),
                        "member": member, "member_sha256": hashlib.sha256(data).hexdigest()})
            k += 1
    return out


def write_parquet_folder(folder: Path) -> dict:
    """The shards under `folder`, and the `info` of card.py and croissant.py for them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    names = [c["name"] for c in CLASSES]
    features = {"image": {"_type": "Image"}, "label": {"names": names, "_type": "ClassLabel"},
                "wnid": {"dtype": "string", "_type": "Value"}}
    features.update({c: {"names": names, "_type": "ClassLabel"} for c in NOISY})
    features.update({c: {"dtype": "string", "_type": "Value"} for c in PROVENANCE})
    fields = [("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])), ("label", pa.int64()),
              ("wnid", pa.string())] + [(c, pa.int64()) for c in NOISY] + [(c, pa.string()) for c in PROVENANCE]
    schema = pa.schema(fields, metadata={b"huggingface": json.dumps({"info": {"features": features}}).encode()})
    everything = rows()
    files: dict[str, list[dict]] = {}
    for split, shards, per in LAYOUT:
        mine = [r for r in everything if r["split"] == split]
        for n in range(shards):
            part = mine[n * per:(n + 1) * per]
            name = f"{split}-{n:05d}-of-{shards:05d}.parquet"
            table = pa.table([pa.array([r[c] for r in part], type=f.type) for c, f in zip(COLUMNS, schema)],
                             schema=schema)
            pq.write_table(table, folder / name, compression="none", use_dictionary=False, write_statistics=False)
            data = (folder / name).read_bytes()
            files.setdefault(split, []).append({"path": name, "bytes": len(data),
                                                "sha256": hashlib.sha256(data).hexdigest()})
    counts = {s: {c["wnid"]: sum(r["split"] == s and r["wnid"] == c["wnid"] for r in everything) for c in CLASSES}
              for s, _, _ in LAYOUT}
    return {
        "stem": "tiny-12",
        "manifest": {"name": "tiny", "description": "Three classes for the tests.", "sha256": "ab" * 32},
        "size": "12",
        "recipe": {"filter": "bicubic", "quality": 75, "rounding": "script", "decode": "full",
                   "name": "fastai-2018", "published": True},
        "fidelity": {"published_bytes_possible": True, "problems": []},
        "toolchain": {"imagenette_build": "0.1.0", "pillow": "Pillow 13.0.0", "libjpeg": "libjpeg-turbo 3.2.0",
                      "resampler": "port"},
        "command": "imagenette-build build --imagenet /data/imagenet --manifest tiny --size 12 --format parquet",
        "classes": CLASSES,
        "counts": counts,
        "format": "parquet",
        "columns": COLUMNS,
        "files": files,
        "leakage": of_members((r["member"] for r in everything), ("train", "val", "unsup")),
        "duplicates": None,
        "preview": None,
    }
