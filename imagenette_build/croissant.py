"""Croissant 1.0 metadata (`croissant.json`) of a parquet output folder, with its Responsible-AI
fields: what `mlcroissant` and the dataset search engines read.

`croissant_jsonld(info)` is pure: the same `info` (card.py's, plus the optional `date`, `version`,
`url` and `creator`) gives the same dict, written with `dumps`. It describes:

- the distribution: each shard as a `cr:FileObject` (relative `contentUrl`, size, sha256), and the
  `cr:FileSet` of the shards the fields read (`includes`: the shards by name);
- `classes`, an `sc:Enumeration` record set (index, WNID, name), inline; `splits`, a `cr:Split`
  record set (the dataset's split names, each with its Croissant meaning);
- `images`, the record set of the rows: the image (`sc:ImageObject`), the label (`cr:Label`, a
  reference to `classes/index`) with its class name joined from `classes`, the WNID, the split
  (from the shard's file name, a reference to `splits/name`), the noisy labels and the provenance
  columns.

Only parquet: `mlcroissant` reads a tar's members as files, but the label of a WebDataset sample is
in a sibling member (`<key>.cls`), which a record set of files cannot join to the image by key.
"""

from __future__ import annotations

import json
import re

from . import leakage as _leakage
from .card import CITATIONS, COLUMNS, IMAGENETTE_URL, LICENSE_LINK, NOISY, TERMS, pretty_name

CONFORMS_TO = "http://mlcommons.org/croissant/1.0"
CONTEXT = {  # Croissant 1.0's, as mlcroissant writes it, with the RAI prefix
    "@language": "en",
    "@vocab": "https://schema.org/",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}
SPLIT_MEANING = {"train": "cr:TrainingSplit", "val": "cr:ValidationSplit", "test": "cr:TestSplit"}
SHARDS = "parquet-shards"


def dumps(doc: dict) -> str:
    """The JSON-LD as written: sorted nowhere (the order is the dict's), two-space indents, UTF-8."""
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def _field(record: str, name: str, description: str, data_type, source: dict | None = None, **more) -> dict:
    out = {"@type": "cr:Field", "@id": f"{record}/{name}", "name": f"{record}/{name}",
           "description": description, "dataType": data_type}
    if source is not None:
        out["source"] = source
    out.update(more)
    return out


def _column(name: str, transform: dict | None = None) -> dict:
    source = {"fileSet": {"@id": SHARDS}, "extract": {"column": name}}
    if transform:
        source["transform"] = transform
    return source


def _image_fields(info: dict) -> list[dict]:
    splits = [s for s in info["files"] if info["files"][s]]
    names = "|".join(re.escape(s) for s in splits)
    fields = [
        _field("images", "image", "The image (JPEG bytes).", "sc:ImageObject", _column("image", {"jsonPath": "bytes"})),
        _field("images", "label", COLUMNS["label"][1].capitalize() + ".", ["sc:Integer", "cr:Label"],
               _column("label"), references={"field": {"@id": "classes/index"}}),
        _field("images", "label_name", "The class's name (the classes record set's name of the label).", "sc:Text",
               {"field": {"@id": "classes/name"}}),
        _field("images", "split", "The split: the shard's file name says it.", "sc:Text",
               {"fileSet": {"@id": SHARDS}, "extract": {"fileProperty": "filename"},
                "transform": {"regex": rf"^({names})-[0-9]+-of-[0-9]+\.parquet$"}},
               references={"field": {"@id": "splits/name"}}),
    ]
    for column in info["columns"]:
        if column in ("image", "label"):
            continue
        if NOISY.fullmatch(column):
            what = f"The label with {column.rsplit('_', 1)[1]} % of train labels changed (a class index)."
            fields.append(_field("images", column, what, "sc:Integer", _column(column)))
        elif column in COLUMNS:
            fields.append(_field("images", column, COLUMNS[column][1].capitalize() + ".", "sc:Text", _column(column)))
        else:
            raise ValueError(f"column {column!r}: the Croissant metadata does not know it (card.COLUMNS)")
    return fields


def _record_sets(info: dict) -> list[dict]:
    splits = [s for s in info["files"] if info["files"][s]]
    classes = {
        "@type": "cr:RecordSet", "@id": "classes", "name": "classes", "dataType": "sc:Enumeration",
        "description": "The classes: index (the label), WordNet ID and name.",
        "key": {"@id": "classes/index"},
        "field": [_field("classes", "index", "The class index: the label.", "sc:Integer"),
                  _field("classes", "wnid", "The WordNet ID of the ImageNet class.", "sc:Text"),
                  _field("classes", "name", "The class's name.", "sc:Text")],
        "data": [{"classes/index": c["index"], "classes/wnid": c["wnid"], "classes/name": c["name"]}
                 for c in info["classes"]],
    }
    split_set = {
        "@type": "cr:RecordSet", "@id": "splits", "name": "splits", "dataType": "cr:Split",
        "description": "The splits of the dataset.", "key": {"@id": "splits/name"},
        "field": [_field("splits", "name", "The split's name.", "sc:Text"),
                  _field("splits", "url", "What the split is for.", "sc:URL")],
        "data": [{"splits/name": s, "splits/url": SPLIT_MEANING.get(s, "cr:Split")} for s in splits],
    }
    images = {"@type": "cr:RecordSet", "@id": "images", "name": "images",
              "description": "One record per image, in member order within each shard.",
              "field": _image_fields(info)}
    return [classes, split_set, images]


def _rai(info: dict) -> dict:
    table = info["leakage"]
    rows = "; ".join(f"{s}: {row[_leakage.TRAIN]:,} from ILSVRC-2012 train, {row[_leakage.VAL]:,} from ILSVRC-2012 val"
                     for s, row in table.items())
    dups = info.get("duplicates")
    dup_text = ("Duplicates were not looked for in this build." if dups is None else
                f"Duplicates found at build time: {dups['exact']['groups']:,} groups of exact duplicates "
                f"({dups['exact']['groups_across_splits']:,} across splits) and {dups['near']['groups']:,} groups of "
                f"near duplicates ({dups['near']['groups_across_splits']:,} across splits); the build report lists them.")
    return {
        "rai:dataCollection": (
            "The images are a subset of ImageNet (ILSVRC-2012), which were collected from the web by image "
            "search and labelled by crowd workers (Deng et al. 2009; Russakovsky et al. 2015). This dataset "
            f"takes the images named by the manifest `{info['manifest']['name']}` from a local copy of "
            "ILSVRC-2012 and " + ("copies their original bytes." if info["size"] == "full" else
                                  f"resizes them to a shortest side of {info['size']} px.")),
        "rai:dataCollectionType": ["Secondary Data analysis", "Web Scraping"],
        "rai:dataCollectionRawData": "ImageNet (ILSVRC-2012) train and val images: " + rows + ".",
        "rai:dataPreprocessingProtocol": [_recipe(info)],
        "rai:dataAnnotationProtocol": (
            "The labels are ImageNet's: the class of the ILSVRC-2012 synset each image was collected and "
            "verified for. The noisy-label columns, where present, change a seeded share of train labels."),
        "rai:dataBiases": [
            "ImageNet's images come from web image search: they over-represent some regions, photographic "
            "styles and the contexts objects are photographed in, and a subset of ImageNet keeps these biases.",
            "Leakage: a model pretrained on ImageNet-1k has seen every image that came from ILSVRC-2012 train, "
            "whichever split of this dataset holds it (" + rows + ").",
        ],
        "rai:dataLimitations": [
            "A small number of classes from ImageNet: not a benchmark of ImageNet-scale recognition.",
            "Scores of models pretrained on ImageNet measure memory of the leaked images as much as transfer "
            "(rai:dataBiases); evaluate on the images from ILSVRC-2012 val, or train from scratch.",
            dup_text,
        ],
        "rai:dataUseCases": ["Training and evaluating image classifiers quickly, for research and education "
                             "(ImageNet's terms: non-commercial research and educational use only)."],
        "rai:personalSensitiveInformation": [
            "Some images show people, who were not asked; the dataset holds no other personal data."],
    }


def _recipe(info: dict) -> str:
    recipe = info.get("recipe")
    if not isinstance(recipe, dict):
        return "No preprocessing: the original JPEG bytes."
    shown = ", ".join(f"{k} {v}" for k, v in recipe.items() if k not in ("name", "published"))
    return f"Resized to a shortest side of {info['size']} px with the recipe {recipe.get('name', 'custom')} ({shown})."


def croissant_jsonld(info: dict) -> dict:
    """The Croissant JSON-LD of a parquet folder (module docstring; card.py for `info`)."""
    if info["format"] != "parquet":
        raise ValueError(f"Croissant metadata describes the parquet output, not {info['format']}")
    files = [f for s in info["files"] for f in info["files"][s]]
    distribution = [{"@type": "cr:FileObject", "@id": f["path"], "name": f["path"],
                     "description": "A parquet shard.", "contentUrl": f["path"],
                     "contentSize": f"{f['bytes']} B", "encodingFormat": "application/x-parquet",
                     "sha256": f["sha256"]} for f in files]
    distribution.append({"@type": "cr:FileSet", "@id": SHARDS, "name": SHARDS,
                         "description": "The parquet shards, every split (the FileObjects above).",
                         "encodingFormat": "application/x-parquet", "includes": [f["path"] for f in files]})
    m = info["manifest"]
    doc = {
        "@context": CONTEXT,
        "@type": "sc:Dataset",
        "name": info["stem"],
        "alternateName": pretty_name(info),
        "description": m["description"],
        "conformsTo": CONFORMS_TO,
        "citeAs": CITATIONS,
        "creator": info.get("creator") or [
            {"@type": "sc:Organization", "name": "ImageNet (Stanford University, Princeton University)",
             "url": "https://www.image-net.org/"},
            {"@type": "sc:Person", "name": "Jeremy Howard (fast.ai): Imagenette",
             "url": "https://github.com/fastai/imagenette"}],
        "license": LICENSE_LINK,
        "usageInfo": TERMS,
        "url": info.get("url") or IMAGENETTE_URL,
        "keywords": ["image classification", "ImageNet", "ILSVRC-2012", "Imagenette"],
        **({"version": info["version"]} if info.get("version") else {}),
        **({"datePublished": info["date"]} if info.get("date") else {}),
        **_rai(info),
        "distribution": distribution,
        "recordSet": _record_sets(info),
    }
    return doc
