"""The commands that design a dataset or look at one, registered on the group in `cli`:
sample-imagenet (a synthetic ImageNet to try things on), classes (search the 1000 classes),
new-manifest (write a manifest for a new subset) and preview (contact sheets). Like `cli`, they
only parse options and call the stages."""

from __future__ import annotations

import json
from pathlib import Path

import click

from . import api
from .declare import JobsType, click_params, from_cli
from .procs import default_jobs
from .samplelayouts import LAYOUTS
from .contactsheet import PreviewOptions, sheet_of
from .errors import UserError, cannot


@click.command("sample-imagenet")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--manifest", default="imagenette2", show_default=True,
              help="Lay out the images this manifest needs (its file list, or --per-class images).")
@click.option("--layout", type=click.Choice(LAYOUTS),
              default="folders", show_default=True,
              help="Which ImageNet layout to write: extracted folders, or the downloads as they come "
                   "(ilsvrc-tars: the original tars and devkit; hf-shards / hf-parquet: Hugging Face's).")
@click.option("--per-class", type=click.IntRange(min=1), default=None,
              help="Only this many train (and a fifth as many val) images per class.")
@click.option("--photos", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Use these real JPEGs (cycled) as content instead of synthetic images.")
@click.option("--jobs", "-j", type=JobsType(), default=None, help="Worker processes [default: all cores].")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def sample_imagenet_command(out, manifest, layout, per_class, photos, jobs, quiet):
    """Write a synthetic ImageNet-1k copy (photo-like content, grayscale, tiny and very wide
    images, decoy classes) in one of the supported layouts, for demos, tests and benchmarks.

    \b
    Examples:
      imagenette-build sample-imagenet /tmp/fake-imagenet
      imagenette-build sample-imagenet /tmp/fake --layout kaggle --manifest imagewoof2 --per-class 20
      imagenette-build sample-imagenet /tmp/fake-tars --layout ilsvrc-tars --per-class 20
    """
    from . import manifest as manifests
    from .samplegen import SampleSpec, generate

    m = manifests.load(manifest)
    stats = generate(SampleSpec(out=out, layout=layout, per_class=per_class, photos=photos),
                     m, jobs=jobs or default_jobs(), quiet=quiet)
    if not quiet:
        click.echo(f"wrote {stats['images'] + stats['decoys']:,} images to {out} as {layout}: {stats['images']:,} of "
                   f"{m.name}'s list and {stats['decoys']:,} decoys of other classes", err=True)
        if stats["manifest"]:
            click.echo(f"its manifest (a subset of {m.name}): --manifest {stats['manifest']}", err=True)


@click.command("classes")
@click.argument("pattern", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the matches as JSON.")
@click.option("--preview", "preview_png", type=click.Path(path_type=Path), default=None, metavar="PNG",
              help="Also write a contact sheet of the matching classes (needs --imagenet).")
@click.option("--imagenet", type=click.Path(path_type=Path), default=None,
              help="The ImageNet copy the --preview images come from.")
@click.option("--per-class", type=click.IntRange(1, 64), default=8, show_default=True,
              help="Images a class on the --preview sheet.")
@click.option("--manifests", "list_manifests", is_flag=True,
              help="List the built-in manifests instead: classes, split policy, description, source.")
def classes_command(pattern, as_json, preview_png, imagenet, per_class, list_manifests):
    """Search the 1000 ILSVRC-2012 classes by name, synonym or WNID (case-insensitive).

    Prints WNID, index in sorted-WNID order (the usual 0..999 label) and names. Names repeat in
    ImageNet ("crane" is a bird and a machine): use the WNID, never the name. With --manifests,
    lists the built-in manifests (the subsets --manifest NAME builds) and where each list comes from.

    \b
    Examples:
      imagenette-build classes crane
      imagenette-build classes n0144
      imagenette-build classes terrier --json
      imagenette-build classes crane --preview cranes.png --imagenet /data/imagenet
      imagenette-build classes --manifests
    """
    from .newdataset import search

    if list_manifests:
        if pattern is not None or preview_png is not None:
            raise click.UsageError("--manifests lists every built-in manifest: give no PATTERN or --preview")
        _print_manifests(as_json)
        return
    found = search(pattern)
    if preview_png is not None:
        if imagenet is None:
            raise click.UsageError("--preview needs --imagenet: the ImageNet copy to take the images from")
        if found:
            api.preview(preview_png, imagenet=imagenet, wnids=[c.wnid for c in found], per_class=per_class)
    if as_json:
        click.echo(json.dumps([{"wnid": c.wnid, "index": c.index, "devkit_id": c.devkit_id,
                                "names": list(c.names)} for c in found], indent=2))
    else:
        for c in found:
            click.echo(f"{c.wnid}  {c.index:4d}  {', '.join(c.names)}")
    if not found:
        raise UserError(f"no class matches {pattern!r}", exit_code=1)


def _print_manifests(as_json: bool) -> None:
    from .newdataset import builtin_manifests, manifest_summary

    found = builtin_manifests()
    if as_json:
        click.echo(json.dumps([manifest_summary(m) for m in found], indent=2))
        return
    for i, m in enumerate(found):
        if i:
            click.echo()
        click.echo(f"{m.name}  {len(m.classes)} classes, split {m.split.policy}")
        click.echo(f"  {m.description}")
        click.echo(f"  source: {m.source.location() if m.source else '(none given)'}")
        for key in ("paper", "note"):
            if m.source and getattr(m.source, key):
                click.echo(f"  {key}: {getattr(m.source, key)}")


@click.command("new-manifest")
@click.argument("name")
@click.option("--wnid", "wnids", multiple=True, help="A class to include (repeat it).")
@click.option("--classes-file", type=click.Path(path_type=Path), help="A file with one WNID per line.")
@click.option("--random", "random_k", type=click.IntRange(1, 1000), help="K classes chosen with --seed.")
@click.option("--split", type=click.Choice(["random", "imagenet"]), default="random", show_default=True,
              help="random: pool ILSVRC train+val per class and re-split (the imagenette2 way: val then holds "
                   "mostly ILSVRC train images, which ImageNet-pretrained weights have seen); imagenet: keep "
                   "ILSVRC's train/val, so val holds no ILSVRC train image (50 a class).")
@click.option("--val-fraction", type=float, default=0.3, show_default=True,
              help="Share of each class in val (--split random), between 0 and 1.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seeds the class choice, the split and the noisy labels.")
@click.option("--description", default="", help="One line saying what the dataset is.")
@click.option("--out", "out", type=click.Path(path_type=Path), default=None,
              help="Where to write the manifest [default: ./NAME.toml].")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def new_manifest_command(name, wnids, classes_file, random_k, split, val_fraction, seed, description, out, force):
    """Write a ready-to-build manifest for a new ImageNet subset.

    \b
    Examples:
      imagenette-build new-manifest birds10 --wnid n01530575 --wnid n01531178 ...
      imagenette-build new-manifest my100 --random 100 --seed 7
      imagenette-build new-manifest dogs --classes-file dogs.txt --split imagenet
      imagenette-build --imagenet /data/imagenet --manifest my100.toml --size 64
    """
    from .newdataset import NewManifest, check_wnid, random_classes, read_classes_file

    given = sum(bool(x) for x in (wnids, classes_file, random_k))
    if given != 1:
        raise click.UsageError("give exactly one of --wnid, --classes-file, --random")
    if wnids:
        for w in wnids:
            check_wnid(w, "--wnid")
        chosen = list(wnids)
    elif classes_file:
        chosen = read_classes_file(classes_file)
    else:
        chosen = random_classes(random_k, seed)
    text = NewManifest(name, tuple(chosen), split, val_fraction, seed, description).to_toml()
    out = out or Path(f"{name}.toml")
    from .safewrite import write_user_file

    try:
        write_user_file(out, text.encode(), replace=force)
    except FileExistsError:
        raise UserError(f"{out}: already exists (use --force to overwrite)") from None
    except OSError as exc:
        raise cannot(out, "write", exc) from None
    click.echo(f"wrote {out} ({len(chosen)} classes, split {split})", err=True)


@click.command("preview", params=click_params(PreviewOptions))
def preview_command(**values):
    """A PNG contact sheet: a row per class (its name and WNID), a few images each.

    The images shown are the first of each class by sha256 of their name: the same sheet every run.

    \b
    Examples:
      imagenette-build preview dist/imagenette2-160.tgz -o sheet.png
      imagenette-build preview --imagenet /data/imagenet --wnid n01530575 --wnid n01531178 -o birds.png
      imagenette-build preview --imagenet /data/imagenet --manifest my.toml -o mine.png
    """
    api.read_settings()
    sheet_of(from_cli(PreviewOptions, values))


DESIGN_COMMANDS = (sample_imagenet_command, classes_command, new_manifest_command, preview_command)
