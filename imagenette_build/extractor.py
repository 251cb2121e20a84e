"""`extract`: an archive, checked, written as `tar xzf` would write it, and never anywhere else.

The archive is read once, as a stream, by `verify`'s reader (`archive_reader`: links, devices,
absolute paths and `..` are refused, every size is bounded), and hashed as it is read. Its members
go to a temporary folder beside the destination, `.<stem>.partial-<host>-<pid>`; the folder is
renamed to `<into>/<stem>` only when the stream was sound, every member lay below the top folder
`<stem>/`, and the archive's sha256 and md5 matched the lines for it in SHA256SUMS and MD5SUMS
beside it (when there are such lines). Files get the mode (less the umask) and the modification
time of their tar header, as tar gives them. Anything wrong leaves nothing under the final name.

`<into>` = `~/.fastai/data` makes fastai's `untar_data(URLs.IMAGENETTE_160)` find the folder without
a download; any `<into>` is a torchvision root for `Imagenette(root, size="160px", download=False)`.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from .archive_reader import ArchiveStream, stem_of_archive_name
from .errors import DataError, UserError
from .limits import MAX_MEMBER_BYTES
from .outputs import create_new, partial_path, read_sums, sync_dir


def _expected_digests(archive: Path) -> dict[str, str]:
    """{"sha256"/"md5": digest} from the sums files beside the archive that have a line for it."""
    out = {}
    for sums, kind, length in (("SHA256SUMS", "sha256", 64), ("MD5SUMS", "md5", 32)):
        path = archive.with_name(sums)
        if os.path.lexists(path):
            line = read_sums(path, length).get(archive.name)
            if line:
                out[kind] = line.lower()
    return out


def load_commands(folder: Path) -> dict[str, str]:
    """One-line loads of the extracted folder, with its real path (README "Using the archives")."""
    root, name = folder.parent, folder.name
    lines = {
        "torchvision": f"torchvision.datasets.ImageFolder('{folder}/train')",
        "fastai": f"ImageDataLoaders.from_folder('{folder}', valid='val')",
        "huggingface": f"datasets.load_dataset('imagefolder', data_dir='{folder}')",
        "tfds": f"tfds.folder_dataset.ImageFolder('{folder}')",
    }
    published = {"imagenette2": "full", "imagenette2-320": "320px", "imagenette2-160": "160px"}
    if name in published:  # the folder names torchvision's Imagenette class knows
        lines["torchvision"] = f"torchvision.datasets.Imagenette('{root}', size='{published[name]}', download=False)"
    return lines


def extract(archive: Path, into: Path, force: bool = False, quiet: bool = True) -> dict:
    """Check `archive` and write `<into>/<stem>/`; {"folder", "files", "bytes", "sha256", "load"}."""
    if not os.path.lexists(archive):
        raise UserError(f"{archive}: no such file")
    stem = stem_of_archive_name(archive.name)
    dest = into / stem
    if os.path.lexists(dest) and not force:
        raise UserError(f"{dest}: already exists (--force replaces it)")
    expected = _expected_digests(archive)
    try:
        into.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--into {into}: cannot create the folder: {exc.strerror or exc}") from None
    tmp = partial_path(dest)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    umask = os.umask(0)
    os.umask(umask)
    files = written = 0
    try:
        with ArchiveStream(archive) as stream:
            for entry in stream.entries():
                relative = _below_top(entry.name, stem, archive)
                if entry.unsafe:
                    raise DataError(f"{archive}: member {entry.name}: {entry.unsafe}; not extracted")
                target = tmp / relative if relative else tmp
                if entry.kind == "dir":
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                if entry.data is None:
                    raise DataError(f"{archive}: member {entry.name}: {entry.size:,} bytes, more than extract "
                                    f"writes ({MAX_MEMBER_BYTES:,})")
                if not relative:
                    raise DataError(f"{archive}: member {entry.name} is a file where the top folder should be")
                target.parent.mkdir(parents=True, exist_ok=True)
                with open(create_new(target, entry.mode & ~umask), "wb") as f:
                    f.write(entry.data)
                os.utime(target, (entry.mtime, entry.mtime))
                files += 1
                written += len(entry.data)
        if stream.io_error:
            raise UserError(stream.io_error)
        if stream.problem:
            raise DataError(f"{archive}: {stream.problem}; nothing extracted")
        digests = stream.digests()
        for kind, want in expected.items():
            if getattr(digests, kind) != want:
                raise DataError(f"{archive}: its {kind} is {getattr(digests, kind)}, the line beside it says {want}: "
                                "not the archive that was built or published; nothing extracted")
        sync_dir(tmp)
        if os.path.lexists(dest):  # --force: the old folder goes only once the new one is whole
            old = partial_path(dest.with_name(dest.name + ".old"))
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
        sync_dir(into)
    except OSError as exc:
        raise DataError(f"{dest}: cannot write: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = {"folder": str(dest), "files": files, "bytes": written, "sha256": digests.sha256,
              "checked_against": sorted(f"{k} in {'SHA256SUMS' if k == 'sha256' else 'MD5SUMS'}" for k in expected),
              "load": load_commands(dest.absolute())}
    if not quiet:
        print(f"extracted {files} files ({written:,} bytes) to {dest}", file=sys.stderr)
    return result


def _below_top(name: str, stem: str, archive: Path) -> str:
    """The member's path below `<stem>/` ('' for the top folder itself); refused otherwise."""
    clean = name.rstrip("/")
    if clean == stem:
        return ""
    if not clean.startswith(stem + "/"):
        raise DataError(f"{archive}: member {name} is not below {stem}/ (the folder named after the archive); "
                        "nothing extracted")
    return clean[len(stem) + 1:]
