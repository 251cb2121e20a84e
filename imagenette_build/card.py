"""The dataset card: `README.md` of an output folder (and `<stem>.README.md` beside an archive), with
the YAML header the Hugging Face Hub and `datasets` read, and a body a person reads.

`card_markdown(info)` is pure: the same `info` gives the same bytes (no date unless `info` has one).
`info` is a plain dict, made by the build from its report and plan:

    stem          "imagenette2-160"
    pretty_name   optional; default "<manifest name>, <size> px" ("full size")
    manifest      {"name", "description", "sha256"}
    size          "160" or "full" (the report's `size`)
    recipe        the report's options.recipe: a dict, or "original bytes"
    fidelity      optional: the report's `fidelity`
    toolchain     optional: the report's `toolchain` (its `imagenette_build`, `pillow`, `libjpeg`,
                  `resampler` are shown)
    command       optional: the command line that built it, as one string
    classes       [{"index", "wnid", "name"}] in index order (the report's `classes`)
    counts        {split: {wnid: images}} (the report's `counts`)
    format        "parquet", "webdataset" or "tgz"
    columns       parquet: the columns, in order (COLUMNS says what each is); otherwise ignored
    files         {split: [{"path", "bytes", "sha256"}]}: the shards of each split, paths relative
                  to the folder the card is in (tgz: the archive, under any one split key)
    leakage       `leakage.leakage_table(plan)`
    duplicates    optional: `DuplicateFinder.result()`; None: not looked for
    preview       optional: file name of the contact sheet beside the card
    date, version optional (Croissant's datePublished and version; shown when given)

Split names: a dataset's `val` is the Hub's and `datasets`' `validation` (`hub_split`), as
`load_dataset` names a `val-*` file without a card; other splits keep their names, so an
unlabelled `unsup/` is a split of its own (without a card, `datasets` drops it).
"""

from __future__ import annotations

import json
import re

from . import leakage as _leakage

LICENSE_NAME = "imagenet"
LICENSE_LINK = "https://www.image-net.org/download.php"
IMAGENET_URL = "https://www.image-net.org/"
IMAGENETTE_URL = "https://github.com/fastai/imagenette"

# What each parquet column is: (`datasets` feature, description). "class" is a ClassLabel.
COLUMNS = {
    "image": ("image", "the image: JPEG bytes, and `path`, the member's path in the .tgz"),
    "label": ("class", "the class index (sorted-WNID order, as `ImageFolder`), -1 in an unlabelled split"),
    "wnid": ("string", "the class's WordNet ID"),
    "source_split": ("string", "`train` or `val`: the ILSVRC-2012 split the image came from"),
    "source_file": ("string", "the ILSVRC-2012 file name of the image"),
    "source_sha256": ("string", "sha256 of the ILSVRC-2012 file's bytes"),
    "member": ("string", "the member's path in the .tgz, below its top folder"),
    "member_sha256": ("string", "sha256 of the member's bytes (the image column's bytes)"),
}
NOISY = re.compile(r"noisy_labels_[0-9]+")

CITATIONS = """@misc{imagenette,
  author = {Jeremy Howard},
  title = {imagenette},
  year = {2019},
  url = {https://github.com/fastai/imagenette/}
}

@article{ILSVRC15,
  author = {Olga Russakovsky and Jia Deng and Hao Su and Jonathan Krause and Sanjeev Satheesh and Sean Ma and Zhiheng Huang and Andrej Karpathy and Aditya Khosla and Michael Bernstein and Alexander C. Berg and Li Fei-Fei},
  title = {{ImageNet Large Scale Visual Recognition Challenge}},
  year = {2015},
  journal = {International Journal of Computer Vision (IJCV)},
  doi = {10.1007/s11263-015-0816-y},
  volume = {115},
  number = {3},
  pages = {211-252}
}

@inproceedings{deng2009imagenet,
  author = {Jia Deng and Wei Dong and Richard Socher and Li-Jia Li and Kai Li and Li Fei-Fei},
  title = {{ImageNet: A Large-Scale Hierarchical Image Database}},
  booktitle = {2009 IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
  pages = {248--255},
  year = {2009},
  doi = {10.1109/CVPR.2009.5206848}
}
"""

TERMS = ("The images are ImageNet's (ILSVRC-2012), under the [ImageNet terms of access]"
         f"({LICENSE_LINK}): non-commercial research and educational use only; you may share them only "
         "with people who have agreed to the same terms, and you are responsible for your use of them. "
         "Princeton University and Stanford University make no warranty. imagenette-build and fastai's "
         "Imagenette code are under the Apache License 2.0, which covers the code, not these images: "
         "a copy of this dataset carries ImageNet's terms, whatever licence tag a copy of it shows.")

_SIZES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
          (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]


def hub_split(split: str) -> str:
    """The split's name on the Hub and in `datasets`."""
    return "validation" if split == "val" else split


def size_category(n: int) -> str:
    """The Hub's `size_categories` bucket of n examples."""
    return next((name for limit, name in _SIZES if n < limit), "n>1B")


def pretty_name(info: dict) -> str:
    if info.get("pretty_name"):
        return info["pretty_name"]
    size = info["size"]
    return f"{info['manifest']['name']}, {'full size' if size == 'full' else size + ' px'}"


def _examples(info: dict, split: str) -> int:
    return sum(info["counts"].get(split, {}).values())


def _features(info: dict) -> list[dict]:
    """`dataset_info.features` of the parquet columns."""
    names = {str(c["index"]): c["name"] for c in info["classes"]}
    out = []
    for column in info["columns"]:
        kind = "class" if NOISY.fullmatch(column) else COLUMNS.get(column, (None,))[0]
        if kind is None:
            raise ValueError(f"column {column!r}: the card does not know it (card.COLUMNS)")
        if kind == "class":
            dtype = {"class_label": {"names": names}}
        elif kind == "image":  # as the shards' own metadata says: decoded to RGB, so that a batch stacks
            dtype = {"image": {"mode": "RGB"}}
        else:
            dtype = kind
        out.append({"name": column, "dtype": dtype})
    return out


def header(info: dict) -> dict:
    """The YAML header's fields."""
    splits = [s for s in info["files"] if info["files"][s]]
    total = sum(_examples(info, s) for s in info["counts"])
    head = {
        "pretty_name": pretty_name(info),
        "license": "other",
        "license_name": LICENSE_NAME,
        "license_link": LICENSE_LINK,
        "task_categories": ["image-classification"],
        "task_ids": ["multi-class-image-classification"],
        "size_categories": [size_category(total)],
        "tags": ["imagenet", "ilsvrc-2012", "imagenette-build", info["format"]],
    }
    if info["format"] == "tgz":
        return head
    head["configs"] = [{"config_name": "default", "data_files": [
        {"split": hub_split(s), "path": [f["path"] for f in info["files"][s]]} for s in splits]}]
    if info["format"] == "parquet":
        sizes = {s: sum(f["bytes"] for f in info["files"][s]) for s in splits}
        head["dataset_info"] = {
            "features": _features(info),
            "splits": [{"name": hub_split(s), "num_bytes": sizes[s], "num_examples": _examples(info, s)}
                       for s in splits],
            "download_size": sum(sizes.values()),
            "dataset_size": sum(sizes.values()),
        }
    return head


def card_markdown(info: dict) -> str:
    """The card: YAML header and body (module docstring for `info`)."""
    return "---\n" + yaml(header(info)) + "---\n\n" + body(info)


def body(info: dict) -> str:
    parts = [_summary(info), _loading(info), _classes(info), _leakage_section(info), _duplicates(info),
             _made(info), _fields(info), "## Licence and terms of use\n\n" + TERMS + "\n",
             "## Citation\n\nCite Imagenette and ImageNet:\n\n```bibtex\n" + CITATIONS + "```\n"]
    return "\n".join(p for p in parts if p)


def _summary(info: dict) -> str:
    m = info["manifest"]
    splits = ", ".join(f"{s} {_examples(info, s):,}" for s in info["counts"])
    total = sum(_examples(info, s) for s in info["counts"])
    size = "the original ILSVRC-2012 JPEG bytes" if info["size"] == "full" else \
        f"resized so that the shortest side is {info['size']} px"
    text = (f"# {pretty_name(info)}\n\n{m['description']}\n\n{total:,} images of {len(info['classes'])} "
            f"ImageNet classes ({splits}), {size}. Built by imagenette-build from a local copy of ImageNet "
            f"(ILSVRC-2012); the manifest `{m['name']}` says which images.\n")
    if info.get("version") or info.get("date"):
        text += "\n" + " ".join(f"{k.capitalize()}: {info[k]}." for k in ("version", "date") if info.get(k)) + "\n"
    if info.get("preview"):
        text += f"\n![A few images of each class]({info['preview']})\n"
    return text


def _loading(info: dict) -> str:
    splits = ", ".join(f"`{hub_split(s)}`" for s in info["files"] if info["files"][s])
    if info["format"] == "tgz":
        return ("## Loading\n\n`tar xzf` the archive (or `imagenette-build extract`): a folder per split, a "
                "folder per class (its WNID), as `torchvision.datasets.ImageFolder` reads them.\n")
    where = ("The splits, the files of each and the features come from this card's header; `croissant.json` "
             "describes the same files for `mlcroissant`." if info["format"] == "parquet" else
             "The splits and the files of each come from this card's header, the samples' fields (`jpg`, `cls`, "
             "`json`) from the shards.")
    return ("## Loading\n\n```python\nfrom datasets import load_dataset\n\nds = load_dataset(\"path/to/this/folder\")"
            f"  # splits {splits}\n```\n\n{where}\n")


def _classes(info: dict) -> str:
    splits = list(info["counts"])
    lines = ["## Classes\n", "| index | WNID | name | " + " | ".join(splits) + " | total |",
             "| ---: | --- | --- |" + " ---: |" * (len(splits) + 1)]
    for c in info["classes"]:
        n = [info["counts"][s].get(c["wnid"], 0) for s in splits]
        lines.append(f"| {c['index']} | {c['wnid']} | {_cell(c['name'])} | " + " | ".join(f"{k:,}" for k in n) +
                     f" | {sum(n):,} |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _leakage_section(info: dict) -> str:
    table = info["leakage"]
    totals = _leakage.totals(table)
    from_train = {s: row[_leakage.TRAIN] for s, row in table.items()}
    evaluated = [s for s in ("val", "test") if s in table and sum(table[s].values())]
    text = ("## Where the images came from: ImageNet train and val\n\n" + _leakage.markdown(table) + "\n"
            f"{totals[_leakage.TRAIN]:,} images came from ILSVRC-2012's train split and "
            f"{totals[_leakage.VAL]:,} from its val split (the file name says which: "
            "`<wnid>_<n>.JPEG` or `ILSVRC2012_val_<n>.JPEG`).")
    if evaluated:
        s = evaluated[0]
        text += (f" A model pretrained on ImageNet-1k was trained on every ILSVRC-2012 train image: "
                 f"{from_train[s]:,} of the {sum(table[s].values()):,} images of `{s}` are images it has "
                 "already seen, with their labels. Its accuracy on this split then measures memory as much as "
                 "transfer; to measure transfer from ImageNet-pretrained weights, evaluate on the images "
                 "from ILSVRC-2012 val only (their file names say so, and the `source_split` column where "
                 "there is one), or train from scratch.")
    return text + "\n"


def _duplicates(info: dict) -> str:
    found = info.get("duplicates")
    if found is None:
        return "## Duplicates\n\nNot looked for in this build.\n"
    lines = ["## Duplicates\n",
             f"Looked for among the {found['images']:,} images: exact (the same decoded pixels) and near (a "
             f"64-bit perceptual hash at most {found['near_threshold']} bits apart: re-encoded or resized "
             "copies).\n", "| kind | groups | images | groups across splits | images in them |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for kind in ("exact", "near"):
        c = found[kind]
        lines.append(f"| {kind} | {c['groups']:,} | {c['members']:,} | {c['groups_across_splits']:,} | "
                     f"{c['members_across_splits']:,} |")
    across = [g for g in found["groups"] if len(g["splits"]) > 1][:10]
    if across:
        lines.append("\nGroups across splits (the build report lists every group):\n")
        lines += [f"- {g['kind']}: " + ", ".join(f"`{m}`" for m in g["members"]) for g in across]
    return "\n".join(lines) + "\n"


def _made(info: dict) -> str:
    m = info["manifest"]
    lines = ["## How it was made\n", f"- Manifest: `{m['name']}` (sha256 `{m['sha256']}`)"]
    recipe = info.get("recipe")
    if isinstance(recipe, dict):
        shown = ", ".join(f"{k} {v}" for k, v in recipe.items() if k not in ("name", "published"))
        lines.append(f"- Recipe: {recipe.get('name', 'custom')} ({shown})" +
                     ("; the published Imagenette recipe" if recipe.get("published") else ""))
    else:
        lines.append("- Recipe: none; the original bytes")
    fidelity = info.get("fidelity")
    if fidelity:
        lines.append("- Byte-identical to the published images possible: " +
                     ("yes" if fidelity.get("published_bytes_possible") else
                      "no (" + "; ".join(fidelity.get("problems", [])) + ")"))
    tools = info.get("toolchain") or {}
    shown = [f"{k} {tools[k]}" if k == "imagenette_build" else str(tools[k])
             for k in ("imagenette_build", "pillow", "libjpeg", "resampler") if tools.get(k)]
    if shown:
        lines.append("- Toolchain: " + ", ".join(shown))
    if info.get("command"):
        lines.append(f"- Command:\n\n  ```\n  {info['command']}\n  ```")
    return "\n".join(lines) + "\n"


def _fields(info: dict) -> str:
    if info["format"] == "parquet":
        lines = ["## Columns\n", "| column | what it is |", "| --- | --- |"]
        for column in info["columns"]:
            what = (f"the label with {column.rsplit('_', 1)[1]} % of train labels changed (Imagenette's "
                    "noisy labels), a class index") if NOISY.fullmatch(column) else COLUMNS[column][1]
            lines.append(f"| `{column}` | {what} |")
        return "\n".join(lines) + "\n"
    if info["format"] == "webdataset":
        return ("## Samples\n\nEach sample is `<key>.jpg` (the image), `<key>.cls` (the class index) and "
                "`<key>.json` (WNID, name, split, class index, noisy labels and provenance); the key is the "
                "member's path without its extension.\n")
    return ""


# ------------------------------------------------------------------------------------------ YAML

_PLAIN_KEY = re.compile(r"[a-z_][a-z0-9_]*")
_RESERVED = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}  # YAML 1.1 reads these as values
_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")


def yaml(value, indent: int = 0) -> str:
    """A block-style YAML document of dicts, lists, strings, ints and bools: strings as JSON strings,
    which are YAML double-quoted scalars, so that no value is read as another type."""
    pad = " " * indent
    if isinstance(value, dict):
        out = ""
        for k, v in value.items():
            key = k if _PLAIN_KEY.fullmatch(k) and k not in _RESERVED else _scalar(k)
            out += f"{pad}{key}:" + (f" {_scalar(v)}\n" if _is_scalar(v) else "\n" + yaml(v, indent + 2))
        return out or f"{pad}{{}}\n"
    if isinstance(value, list):
        out = ""
        for v in value:
            if _is_scalar(v):
                out += f"{pad}- {_scalar(v)}\n"
            else:
                inner = yaml(v, indent + 2)
                out += f"{pad}- " + inner[indent + 2:]
        return out or f"{pad}[]\n"
    return f"{pad}{_scalar(value)}\n"


def _is_scalar(v) -> bool:
    return not isinstance(v, (dict, list)) or not v


def _scalar(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):  # (JSON escapes C0 controls; YAML also reads these as breaks or refuses them)
        return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(v, ensure_ascii=False))
    if isinstance(v, (dict, list)):  # empty
        return "{}" if isinstance(v, dict) else "[]"
    raise TypeError(f"no YAML for {type(v).__name__}")
