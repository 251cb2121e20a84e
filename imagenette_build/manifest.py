"""Manifests: what a dataset is (classes, split, root files, published uploads), as a TOML file.

A manifest never says how images are made; the build code never names a dataset. The schema is
documented in docs/manifest.md; every key is checked here, and every mistake is a
one-line `UserError` naming the file.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import classes as imagenet_classes
from .errors import UserError, cannot
from .filelist import MAX_FILE_LIST, SAFE_NAME_RE, ListedImage, read_file_list
from .manifest_tables import (PUBLISHED_KEYS, SOURCE_KEYS, ListSource, check_keys, get, parse_published, parse_source,
                              shown)
from .published import Published
from .readfile import MAX_TEXT_FILE, kind_of, read_bytes, sha256_of
from .shipped import shipped_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python < 3.11 only
    import tomli as tomllib

SPLIT_POLICIES = ("files", "imagenet", "random")
DEFAULT_SPLITS = ("train", "val")

_TOP_KEYS = {"name", "description", "stem", "root_files", "split", "classes", "published", "noisy_labels", "source"}
_SPLIT_KEYS = {"policy", "list", "splits", "val_fraction", "seed", "extra"}
_EXTRA_KEYS = {"name", "from", "fraction", "classes"}
_NOISY_KEYS = {"seed", "enabled"}
NOISE_PERCENTS = (1, 5, 25, 50)
_CLASS_KEYS = {"wnid", "name"}
_PUBLISHED_KEYS = PUBLISHED_KEYS
_SOURCE_KEYS = SOURCE_KEYS


@dataclass(frozen=True)
class DatasetClass:
    """One class of a dataset: its label `index` (its WNID's rank among the dataset's WNIDs, sorted:
    torchvision's ImageFolder order), WNID and name. `classes.ImageNetClass` is a row of ILSVRC-2012's
    own table of 1000 (its index, devkit id and synonyms), a different thing."""

    index: int
    wnid: str
    name: str

    def to_json(self) -> dict:
        return {"index": self.index, "wnid": self.wnid, "name": self.name}


@dataclass(frozen=True)
class ExtraSplit:
    """An unlabelled split (Imagewang's `unsup/`): a seeded `fraction` of the train images of
    `classes` moves to the flat folder `<name>/`."""

    name: str
    source: str  # the split images are taken from ("train")
    fraction: float
    classes: tuple[str, ...]  # empty: every class


@dataclass(frozen=True)
class SplitPolicy:
    policy: str  # one of SPLIT_POLICIES
    splits: tuple[str, ...] = DEFAULT_SPLITS
    list_file: str | None = None  # policy "files"
    val_fraction: float | None = None  # policy "random"
    seed: int | None = None  # policy "random"; also seeds the extra splits
    extra: tuple[ExtraSplit, ...] = ()

    @property
    def labelled_splits(self) -> tuple[str, ...]:
        extra = {e.name for e in self.extra}
        return tuple(s for s in self.splits if s not in extra)


@dataclass(frozen=True)
class NoisyLabels:
    """The generated `noisy_<name>.csv` of a manifest without a published list."""

    enabled: bool
    seed: int


@dataclass(frozen=True)
class Manifest:
    name: str
    description: str
    stem: str
    classes: tuple[DatasetClass, ...]  # in the manifest's order
    split: SplitPolicy
    root_files: tuple[str, ...]
    published: tuple[Published, ...]
    noisy_labels: NoisyLabels
    path: Path  # the TOML file
    file_hashes: dict[str, str] = field(default_factory=dict)  # TOML and every file it names
    source: ListSource | None = None  # where the class list comes from ([source])

    @property
    def noisy_labels_file(self) -> str | None:
        """The name of the generated noisy-labels CSV at the archive root, if one is generated."""
        return f"noisy_{self.name}.csv" if self.noisy_labels.enabled else None

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def wnids(self) -> tuple[str, ...]:
        return tuple(c.wnid for c in self.classes)

    def archive_stem(self, size: int | None) -> str:
        """`imagenette2` for the full-size variant, `imagenette2-160` for size 160."""
        return self.stem if size is None else f"{self.stem}-{size}"

    def read_root_file(self, name: str) -> bytes:
        """The bytes of root file `name`, as hashed when the manifest was loaded (a file changed
        since then is an error: the report would give the wrong hash)."""
        path = self.base_dir / name
        try:
            data = read_bytes(path, MAX_TEXT_FILE, "a manifest's file", follow_symlinks=False)
        except OSError as exc:
            raise cannot(path, "read", exc, UserError) from None
        if name in self.file_hashes and hashlib.sha256(data).hexdigest() != self.file_hashes[name]:
            raise UserError(f"{path}: changed since the manifest {self.path} was read; build again")
        return data

    def listed_images(self) -> list[ListedImage]:
        """The explicit file list of a `files` manifest, in the list's own order."""
        if self.split.policy != "files" or self.split.list_file is None:
            raise ValueError(f"manifest {self.name} has no file list (policy {self.split.policy})")
        return read_file_list(self.base_dir / self.split.list_file, self.split.splits, set(self.wnids))

    @property
    def sha256(self) -> str:
        """One hash over the TOML and every file it names, in name order."""
        h = hashlib.sha256()
        for name in sorted(self.file_hashes):
            h.update(f"{name}\0{self.file_hashes[name]}\n".encode())
        return h.hexdigest()


# --------------------------------------------------------------------------- finding manifests


def builtin_names() -> list[str]:
    return sorted(p.stem for p in shipped_dir().glob("*.toml"))


def resolve(spec: str) -> Path:
    """A manifest given as a built-in name (`imagewoof2`) or as a path to a TOML file."""
    looks_like_path = spec.endswith(".toml") or "/" in spec or "\\" in spec
    if looks_like_path:
        path = Path(spec)
        if not path.is_file():
            raise UserError(f"{spec}: manifest file not found")
        return path
    path = shipped_dir() / f"{spec}.toml"
    if not path.is_file():
        raise UserError(f"unknown manifest {spec!r}: built-in manifests are {', '.join(builtin_names())}; "
                        "or give the path to a .toml file")
    return path


def load(spec: str) -> Manifest:
    return load_path(resolve(spec))


# --------------------------------------------------------------------------- parsing


def load_path(path: Path) -> Manifest:
    try:
        raw = read_bytes(path, MAX_TEXT_FILE, "a manifest")
    except OSError as exc:
        raise cannot(path, "read manifest", exc, UserError) from None
    return load_text(raw, path)


def load_text(raw: bytes, path: Path) -> Manifest:
    """The manifest in `raw`, as if read from `path` (named in errors; the files it names are read
    beside it): `new-manifest` checks what it would write with the loader itself."""
    where = str(path)
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{where}: not valid TOML: {exc}") from None
    except RecursionError:  # (tomllib recurses once per level: some 400 levels of arrays or inline tables)
        raise UserError(f"{where}: not a manifest: arrays or tables nested too deeply to be read") from None
    check_keys(where, doc, _TOP_KEYS)

    name = get(where, doc, "name", str)
    stem = get(where, doc, "stem", str)
    if not SAFE_NAME_RE.match(stem):
        raise UserError(f"{where}: stem {shown(stem)} must be letters, digits, '.', '_', '+' or '-'")
    description = get(where, doc, "description", str, required=False) or ""

    classes = _parse_classes(where, get(where, doc, "classes", list))
    split = _parse_split(where, get(where, doc, "split", dict), {c.wnid for c in classes})

    root_files = tuple(get(where, doc, "root_files", list, required=False) or ())
    for rf in root_files:
        if not isinstance(rf, str) or not SAFE_NAME_RE.match(rf):
            raise UserError(f"{where}: root_files entry {shown(rf)} must be a plain file name")
        if rf in split.splits:
            raise UserError(f"{where}: root file {shown(rf)} has the name of a split")
    if len(set(root_files)) != len(root_files):
        raise UserError(f"{where}: root_files lists a file twice")

    source = parse_source(where, doc.get("source"))
    published = tuple(parse_published(f"{where} [[published]] #{i + 1}", p)
                      for i, p in enumerate(get(where, doc, "published", list, required=False) or ()))

    noisy = _parse_noisy(where, get(where, doc, "noisy_labels", dict, required=False), split)
    if noisy.enabled and not SAFE_NAME_RE.match(f"noisy_{name}.csv"):
        raise UserError(f"{where}: name {shown(name)} must be a plain name (it names noisy_<name>.csv)")

    hashes = {path.name: hashlib.sha256(raw).hexdigest()}
    named = list(root_files) + ([split.list_file] if split.list_file else [])
    named += sorted({p.members for p in published if p.members} - set(named))
    for fname in named:
        limit = MAX_FILE_LIST if fname == split.list_file else MAX_TEXT_FILE
        hashes[fname] = _hash_named_file(where, path.parent, fname, limit)

    manifest = Manifest(name=name, description=description, stem=stem, classes=classes, split=split,
                        root_files=root_files, published=published, noisy_labels=noisy, path=path,
                        file_hashes=hashes, source=source)
    if split.policy == "files":
        manifest.listed_images()  # validate the list now, not half way through a build
    return manifest


def _hash_named_file(where: str, folder: Path, fname: str, limit: int) -> str:
    """The sha256 of a file the manifest names (a root file, the file list). It must be a regular
    file in the manifest's own folder: a root file is packed into the archive, so a symlink could
    pack any file on the machine (/etc/shadow), and a FIFO would block the read forever."""
    fpath = folder / fname
    try:
        info = os.lstat(fpath)
    except FileNotFoundError:
        raise UserError(f"{where}: names {fname!r}, but {fpath} does not exist") from None
    except OSError as exc:
        raise cannot(fpath, "read", exc, UserError) from None
    if stat.S_ISLNK(info.st_mode):
        raise UserError(f"{fpath}: is a symbolic link; the files a manifest names must be regular files "
                        f"in its folder {folder}")
    if not stat.S_ISREG(info.st_mode):
        raise UserError(f"{fpath}: not a regular file: {kind_of(info.st_mode)}")
    if fpath.resolve().parent != folder.resolve():  # (a plain name: only a symlink could lead out)
        raise UserError(f"{fpath}: is not in the manifest's folder {folder}")
    try:  # (no symlink followed here either: it may have been swapped in since the lstat)
        return sha256_of(fpath, limit, "a manifest's file", follow_symlinks=False)
    except OSError as exc:
        raise cannot(fpath, "read", exc, UserError) from None


def _parse_classes(where: str, items: list) -> tuple[DatasetClass, ...]:
    if not items:
        raise UserError(f"{where}: [[classes]] is empty: a manifest needs at least one class")
    known = imagenet_classes.by_wnid()
    seen: set[str] = set()
    out = []
    for i, item in enumerate(items):
        here = f"{where} [[classes]] #{i + 1}"
        if not isinstance(item, dict):
            raise UserError(f"{here}: must be a table with 'wnid' and 'name'")
        check_keys(here, item, _CLASS_KEYS)
        wnid = get(here, item, "wnid", str)
        if not imagenet_classes.is_wnid(wnid):
            raise UserError(f"{here}: malformed WNID {shown(wnid)} (expected 'n' and 8 digits, like n01440764)")
        if wnid not in known:
            raise UserError(f"{here}: {wnid} is not one of the 1000 ILSVRC-2012 classes "
                            "(search them with `imagenette-build classes`)")
        if wnid in seen:
            raise UserError(f"{here}: duplicate class {wnid}")
        seen.add(wnid)
        name = get(here, item, "name", str, required=False) or known[wnid].names[0]
        out.append((wnid, name))
    rank = {wnid: i for i, wnid in enumerate(sorted(seen))}
    return tuple(DatasetClass(rank[wnid], wnid, name) for wnid, name in out)


def _parse_split(where: str, table: dict, wnids: set[str]) -> SplitPolicy:
    here = f"{where} [split]"
    check_keys(here, table, _SPLIT_KEYS)
    policy = get(here, table, "policy", str)
    if policy not in SPLIT_POLICIES:
        raise UserError(f"{here}: unknown policy {shown(policy)} (one of {', '.join(SPLIT_POLICIES)})")

    def only_for(keys: set[str]) -> None:
        extra = sorted((set(table) - {"policy", "splits"}) - keys)
        if extra:
            raise UserError(f"{here}: key {shown(extra[0])} does not apply to policy {shown(policy)}")

    if policy == "files":
        only_for({"list"})
        splits = tuple(get(here, table, "splits", list, required=False) or DEFAULT_SPLITS)
        _check_split_names(here, splits)
        list_file = get(here, table, "list", str)
        if not SAFE_NAME_RE.match(list_file):
            raise UserError(f"{here}: list {shown(list_file)} must be a file name beside the manifest")
        return SplitPolicy(policy, splits, list_file=list_file)
    if "splits" in table:
        raise UserError(f"{here}: 'splits' applies to policy 'files'; policy {shown(policy)} makes train and val "
                        "(add unlabelled splits with [[split.extra]])")
    fraction = seed = None
    if policy == "imagenet":
        only_for({"seed", "extra"})
    else:
        only_for({"val_fraction", "seed", "extra"})
        fraction = get(here, table, "val_fraction", (int, float))
        if not is_val_fraction(fraction):
            raise UserError(f"{here}: val_fraction must be between 0 and 1, not {fraction}")
        fraction = float(fraction)
    seed = get(here, table, "seed", int, required=policy == "random")
    extra = tuple(_parse_extra(f"{here} [[split.extra]] #{i + 1}", e, wnids)
                  for i, e in enumerate(get(here, table, "extra", list, required=False) or ()))
    if extra and seed is None:
        raise UserError(f"{here}: [[split.extra]] needs a 'seed' in [split]")
    splits = DEFAULT_SPLITS + tuple(e.name for e in extra)
    _check_split_names(here, splits)
    return SplitPolicy(policy, splits, val_fraction=fraction, seed=seed, extra=extra)


def is_val_fraction(value: Any) -> bool:
    """A share of each class in val that a random split can make: a number strictly between 0 and 1
    (not nan). The one check of the loader and of `new-manifest`, so it writes only what builds."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1


def _check_split_names(here: str, splits: tuple) -> None:
    for s in splits:
        if not isinstance(s, str) or not SAFE_NAME_RE.match(s):
            raise UserError(f"{here}: split name {shown(s)} must be a plain name like 'train'")
    if len(set(splits)) != len(splits):
        raise UserError(f"{here}: a split is named twice")


def _parse_extra(where: str, table: Any, wnids: set[str]) -> ExtraSplit:
    if not isinstance(table, dict):
        raise UserError(f"{where}: must be a table")
    check_keys(where, table, _EXTRA_KEYS)
    name = get(where, table, "name", str)
    source = get(where, table, "from", str, required=False) or "train"
    if source != "train":
        raise UserError(f"{where}: 'from' must be 'train' (val stays whole)")
    fraction = get(where, table, "fraction", (int, float))
    if not 0 < fraction <= 1:
        raise UserError(f"{where}: fraction must be in (0, 1], not {fraction}")
    chosen = tuple(get(where, table, "classes", list, required=False) or ())
    for w in chosen:
        if not isinstance(w, str) or w not in wnids:  # (a list or table here is unhashable: a TypeError)
            raise UserError(f"{where}: class {shown(w)} is not among the manifest's classes")
    return ExtraSplit(name, source, float(fraction), chosen)


def _parse_noisy(where: str, table: dict | None, split: SplitPolicy) -> NoisyLabels:
    """Generated noisy labels: on by default for manifests without a published file list."""
    table = table or {}
    here = f"{where} [noisy_labels]"
    check_keys(here, table, _NOISY_KEYS)
    enabled = get(here, table, "enabled", bool, required=False)
    if enabled is None:
        enabled = split.policy != "files"
    if enabled and split.policy == "files":
        raise UserError(f"{here}: a 'files' manifest ships its own list; noisy labels are generated "
                        "only for policies imagenet and random")
    seed = get(here, table, "seed", int, required=False)
    return NoisyLabels(enabled, seed if seed is not None else (split.seed or 0))
