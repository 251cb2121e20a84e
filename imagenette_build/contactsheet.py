"""Contact sheets: a row per class (its name and WNID), a few images each, as one PNG.

Of an archive (the images of each class folder in it) or of candidate classes straight from an
ImageNet copy, so that a person choosing classes for a new dataset can look before building. The
images shown are the first `per_class` of each class by sha256 of their path (or file name): the
same sheet on every run and machine. Memory holds the thumbnails only: an archive is read as a
stream (`archive_reader`, with verify's safety rules) and each class keeps a bounded heap. The
drawing is `sheet`'s, which the build's own sheet (on its dataset card) shares.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import click
from PIL import Image

from .archive_reader import ArchiveStream
from .declare import PATH, option
from .errors import UserError, cannot
from .sheet import MAX_CLASSES, MAX_PER_CLASS, THUMB, Row, draw, key, title
from .transform import open_image


def thumbnail(data: bytes, size: int = THUMB) -> Image.Image | None:
    """A small RGB copy of an image (libjpeg's reduced decode where it can), None if it does not
    decode: a preview shows what it can."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = open_image(data)  # the build's decode bound (limits.py), whatever PIL's is set to
            img.draft("RGB", (size, size))
            img = img.convert("RGB")
            img.thumbnail((size, size), Image.Resampling.BICUBIC)
        return img
    except Exception:  # any decoder failure: the image is left out of the sheet
        return None


def _check_counts(per_class: int, classes: int) -> None:
    if not 1 <= per_class <= MAX_PER_CLASS:
        raise UserError(f"--per-class {per_class}: give 1..{MAX_PER_CLASS} images a class")
    if classes > MAX_CLASSES:
        raise UserError(f"{classes} classes: a sheet shows at most {MAX_CLASSES}; pick fewer")


def of_archive(path: Path, names: dict[str, str], per_class: int = 8) -> Image.Image:
    """A sheet of an archive: one row per class folder (`<split>/<wnid>/`, splits merged), titled
    with `names[wnid]` where the manifest names it."""
    _check_counts(per_class, 0)
    rows: dict[str, Row] = {}
    with ArchiveStream(path) as stream:
        for entry in stream.entries():
            parts = entry.parts
            if entry.data is None or parts is None or len(parts) != 4:  # <top>/<split>/<wnid>/<file>
                continue
            wnid = parts[2]
            row = rows.get(wnid)
            if row is None:
                if len(rows) >= MAX_CLASSES:
                    raise UserError(f"{path}: more than {MAX_CLASSES} class folders; a sheet shows at most that many")
                row = rows[wnid] = Row(title(wnid, names), per_class)
            k = key(parts[3])
            if row.wants(k):
                thumb = thumbnail(entry.data)
                if thumb is not None:
                    row.add(k, thumb)
    if stream.io_error:
        raise UserError(stream.io_error)
    if stream.problem and not rows:
        raise UserError(f"{path}: {stream.problem}")
    if not rows:
        raise UserError(f"{path}: no images in <top>/<split>/<class>/ folders to show")
    return draw([rows[w] for w in sorted(rows)])


def of_classes(images: dict[str, Iterable[tuple[str, Callable[[], bytes]]]], names: dict[str, str],
               per_class: int = 8) -> Image.Image:
    """A sheet of candidate classes: `images[wnid]` yields (file name, a function reading its
    bytes). Only the chosen images are read: the first `per_class` by sha256 of their name, with
    the next in that order standing in for one that cannot be read or decoded."""
    _check_counts(per_class, len(images))
    rows = []
    for wnid, files in images.items():
        row = Row(title(wnid, names), per_class)
        for _, name, read in sorted(((key(name), name, read) for name, read in files), key=lambda t: t[0]):
            if len(row.chosen) == per_class:
                break
            try:
                thumb = thumbnail(read())
            except OSError:
                thumb = None
            if thumb is not None:
                row.add(key(name), thumb)
        rows.append(row)
    return draw(rows)


def save_png(img: Image.Image, out: Path) -> None:
    """Written as every file a user names is (`safewrite.write_user_file`): a file is whole or absent,
    a device or a pipe is written into, never replaced."""
    from .safewrite import write_user_file

    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    try:
        write_user_file(out, buf.getvalue())
    except OSError as exc:
        raise cannot(out, "write", exc, UserError) from None


@dataclass(frozen=True)
class PreviewOptions:
    """`preview`'s options, declared once (`declare`)."""

    out: Path = option(type=PATH, flag="--output", short="-o", help="The PNG to write.")
    archive: Path | None = option(None, type=PATH, argument=True, help="The archive to show.")
    imagenet: Path | None = option(None, type=PATH, help="Show classes of this ImageNet copy instead of an archive.")
    wnids: tuple[str, ...] = option((), multiple=True, flag="--wnid", help="A class to show (repeat it); with "
                                    "--imagenet.")
    manifest: str | None = option(None, help="With --imagenet and no --wnid: show the manifest's classes; with an "
                                  "archive: its class names.")
    per_class: int = option(8, type=click.IntRange(1, MAX_PER_CLASS), help="Images a class.")

    def __post_init__(self):
        if (self.archive is None) == (self.imagenet is None):
            raise UserError("give an ARCHIVE or --imagenet DIR (not both)")


def sheet_of(opts: PreviewOptions) -> Path:
    """Write the contact sheet of an archive, or of classes (`wnids`, else the manifest's) of an
    ImageNet copy, to `out` (PNG); returns `out`."""
    from . import classes as imagenet_classes
    from . import manifest as manifests
    from .newdataset import check_wnid

    out, archive, imagenet, wnids, manifest, per_class = (opts.out, opts.archive, opts.imagenet, opts.wnids,
                                                           opts.manifest, opts.per_class)
    table = {c.wnid: c.names[0] for c in imagenet_classes.all_classes()}
    if archive is not None:
        if manifest is not None:
            table.update({c.wnid: c.name for c in manifests.load(manifest).classes})
        return _saved(of_archive(archive, table, per_class), out)
    if not wnids:
        if manifest is None:
            raise UserError("give the classes to show: --wnid (repeat it) or --manifest")
        loaded = manifests.load(manifest)
        wnids = loaded.wnids
        table.update({c.wnid: c.name for c in loaded.classes})
    for w in wnids:
        check_wnid(w, "--wnid")
    _check_counts(per_class, len(wnids))
    from .progress import Progress
    from .sources import open_source

    source = open_source(imagenet)
    try:
        source.select(wnids, Progress(quiet=True))
        images = {w: [(i.filename, i.ref.read) for i in source.images(w)] for w in dict.fromkeys(wnids)}
        return _saved(of_classes(images, table, per_class), out)
    finally:
        source.close()


def _saved(img: Image.Image, out: Path) -> Path:
    save_png(img, out)
    return out
