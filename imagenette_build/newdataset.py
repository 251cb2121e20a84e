"""Making new datasets the Imagenette way: find classes, choose them, write a manifest.

Everything here is seeded with sha256 only, never with `random`'s or numpy's global state, so the
same seed gives the same classes on every machine and Python version.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from . import classes as imagenet
from .errors import UserError, cannot
from .manifest import SAFE_NAME_RE, Manifest, builtin_names, is_val_fraction, load, load_text
from .readfile import MAX_TEXT_FILE, read_bytes


def search(pattern: str | None) -> list[imagenet.ImageNetClass]:
    """Classes whose WNID, short name or any synonym contains `pattern` (case-insensitive).

    Names repeat in ImageNet (two "crane"s, two "maillot"s): every match is returned, keyed by WNID.
    """
    if not pattern:
        return list(imagenet.all_classes())
    needle = pattern.lower().replace("_", " ")
    out = []
    for c in imagenet.all_classes():
        texts = [c.wnid, c.short_name.replace("_", " "), *c.names]
        if any(needle in t.lower() for t in texts):
            out.append(c)
    return out


def builtin_manifests() -> list[Manifest]:
    """Every built-in manifest, by name."""
    return [load(name) for name in builtin_names()]


def manifest_summary(m: Manifest) -> dict:
    """What `classes --manifests --json` says of a manifest: its class count, split policy,
    description and `[source]` (None where it gives none)."""
    return {"name": m.name, "classes": len(m.classes), "split": m.split.policy, "description": m.description,
            "source": m.source.to_json() if m.source else None}


def random_classes(k: int, seed: int) -> list[str]:
    """K classes, chosen by sorting all 1000 by sha256("<seed>\\0class\\0<wnid>"); returned sorted."""
    if not 1 <= k <= 1000:
        raise UserError(f"--random {k}: choose between 1 and 1000 classes")
    ranked = sorted(imagenet.all_classes(), key=lambda c: hashlib.sha256(f"{seed}\0class\0{c.wnid}".encode()).hexdigest())
    return sorted(c.wnid for c in ranked[:k])


def read_classes_file(path: Path) -> list[str]:
    """One WNID per line (anything after it on the line, and lines starting with #, are ignored)."""
    try:
        lines = read_bytes(path, MAX_TEXT_FILE, "a classes file").decode("utf-8").splitlines()
    except OSError as exc:
        raise cannot(path, "read", exc, UserError) from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text file") from None
    out = []
    for lineno, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        wnid = text.split()[0]
        check_wnid(wnid, f"{path} line {lineno}")
        out.append(wnid)
    return out


def check_wnid(wnid: str, where: str) -> None:
    if not imagenet.is_wnid(wnid):
        raise UserError(f"{where}: malformed WNID {wnid!r} (expected 'n' and 8 digits, like n01440764)")
    if wnid not in imagenet.by_wnid():
        raise UserError(f"{where}: {wnid} is not one of the 1000 ILSVRC-2012 classes")


@dataclass(frozen=True)
class NewManifest:
    name: str
    wnids: tuple[str, ...]
    split: str = "random"  # imagenet | random
    val_fraction: float = 0.3
    seed: int = 0
    description: str = ""

    def to_toml(self) -> str:
        if not SAFE_NAME_RE.match(self.name):
            raise UserError(f"name {self.name!r}: use letters, digits, '.', '_', '+' or '-'")
        if len(set(self.wnids)) != len(self.wnids):
            dup = next(w for w in self.wnids if self.wnids.count(w) > 1)
            raise UserError(f"class {dup} is given twice")
        if not self.wnids:
            raise UserError("no classes: give --wnid, --classes-file or --random")
        if not is_val_fraction(self.val_fraction):  # (what the manifest loader refuses: nan, 0, 1e-400, inf)
            raise UserError(f"--val-fraction {self.val_fraction}: must be a number between 0 and 1 (not 0 or 1)")
        q = _toml_string
        by_wnid = imagenet.by_wnid()
        description = self.description or f"{len(self.wnids)} ImageNet classes, made with imagenette-build new-manifest."
        lines = [
            "# Made by `imagenette-build new-manifest`. Schema: docs/manifest.md of imagenette-build.",
            f"name = {q(self.name)}",
            f"description = {q(description)}",
            f"stem = {q(self.name)}",
            "",
            "[split]",
            f"policy = {q(self.split)}",
        ]
        if self.split == "random":
            lines.append(f"val_fraction = {self.val_fraction!r}")
        lines += [f"seed = {self.seed}", "", "[noisy_labels]  # writes noisy_<name>.csv at the archive root",
                  f"seed = {self.seed}", ""]
        for w in sorted(self.wnids):
            lines += ["[[classes]]", f"wnid = {q(w)}", f"name = {q(by_wnid[w].names[0])}", ""]
        text = "\n".join(lines)
        try:  # what the build would refuse is never written
            load_text(text.encode(), Path(f"{self.name}.toml"))
        except UserError as exc:
            raise UserError(f"new-manifest would write a manifest the build refuses: {exc}") from None
        return text


def _toml_string(text: str) -> str:
    """`text` as a TOML basic string. (json.dumps wrote a character beyond U+FFFF, an emoji, as two
    escaped surrogates, which TOML refuses.) A lone surrogate, left by a command-line argument that is
    not UTF-8, is refused."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UserError(f"{text[:60]!r}: not UTF-8 text (an argument holding a byte that is not UTF-8?)") from None
    escaped = json.dumps(text, ensure_ascii=False)  # quotes, backslashes and C0 controls escaped
    return escaped.replace("\x7f", "\\u007f")  # (DEL, which TOML also wants escaped)
