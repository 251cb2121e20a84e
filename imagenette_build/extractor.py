"""`extract`: an archive, checked, written as `tar xzf` would write it, and never anywhere else.

The archive is read once, as a stream, by `verify`'s reader (`archive_reader`: every size bounded,
links, devices and names out of normal form refused by `safepath.member_parts`), and hashed as it
is read. Its members are written by `safepath.SafeTree` into a fresh temporary folder beside the
destination, `.<stem>.partial-<host>-<pid>`; that folder is renamed to `<into>/<stem>` only when
the stream was sound, every member lay below the top folder `<stem>/`, and the archive's sha256
and md5 matched the lines for it in SHA256SUMS and MD5SUMS beside it (when there are such lines).
The rename never replaces a folder without `--force`, even one that appeared meanwhile
(RENAME_NOREPLACE), and with `--force` swaps the two in one step (RENAME_EXCHANGE). Files get the
mode and modification time of their tar header as the standard library's data filter gives them
(`tarfile.data_filter`, PEP 706: no setuid or group/other write bits), less the umask; folders
their modification time. Anything wrong leaves nothing: no temporary folder, and no `--into` that
the run itself created.

`<into>` = `~/.fastai/data` makes fastai's `untar_data(URLs.IMAGENETTE_160)` find the folder without
a download; any `<into>` is a torchvision root for `Imagenette(root, size="160px", download=False)`.
"""

from __future__ import annotations

import os
import stat
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from .archive_reader import ArchiveStream, stem_of_archive_name
from .declare import PATH, option
from .errors import DataError, UserError, cannot
from .limits import MAX_MEMBER_BYTES
from .readfile import kind_of
from .safepath import SafeTree, UnsafeName, below, ordinary_name, printable
from .safewrite import (ArchiveLocks, new_dir, partial_path, put_in_place, remove_any, remove_stale_partials,
                        sync_dir)
from .sums import read_sums

SUM_FILES = (("SHA256SUMS", "sha256", 64), ("MD5SUMS", "md5", 32))


def _expected_digests(archive: Path) -> dict[str, str]:
    """{"sha256"/"md5": digest} from the sums files beside the archive that have a line for it."""
    out = {}
    for sums, kind, length in SUM_FILES:
        path = archive.with_name(sums)
        if os.path.lexists(path):
            line = read_sums(path, length, only=archive.name).get(archive.name)
            if line:
                out[kind] = line.lower()
    return out


def load_commands(folder: Path) -> dict[str, str]:
    """One-line loads of the extracted folder, with its real path (README "Using the archives").
    Paths are Python literals (`repr`): a folder name is data, never code in the printed line."""
    root, name = folder.parent, folder.name
    lines = {
        "torchvision": f"torchvision.datasets.ImageFolder({str(folder / 'train')!r})",
        "fastai": f"ImageDataLoaders.from_folder({str(folder)!r}, valid='val', item_tfms=Resize(224))",
        "huggingface": f"datasets.load_dataset('imagefolder', data_dir={str(folder)!r})",
        "tfds": f"tfds.folder_dataset.ImageFolder({str(folder)!r})",
    }
    published = {"imagenette2": "full", "imagenette2-320": "320px", "imagenette2-160": "160px"}
    if name in published:  # the folder names torchvision's Imagenette class knows
        lines["torchvision"] = (f"torchvision.datasets.Imagenette({str(root)!r}, size={published[name]!r}, "
                                "download=False)")
    return lines


@dataclass(frozen=True)
class ExtractOptions:
    """`extract`'s options, declared once (`declare`)."""

    archive: Path = option(type=PATH, argument=True, help="The .tgz to check and unpack.")
    into: Path = option(Path("."), type=PATH, help="Write <INTO>/<stem>/ (a torchvision root, or ~/.fastai/data for "
                        "fastai's untar_data); a leading ~ is your home.")
    force: bool = option(False, is_flag=True, help="Replace an existing <INTO>/<stem>/ (only once the new one is "
                         "complete).")

    def __post_init__(self):
        # (os.path's expanduser leaves `~nosuchuser` as it is, where Path's raised RuntimeError)
        object.__setattr__(self, "into", Path(os.path.expanduser(self.into)))


def extract(opts: ExtractOptions, quiet: bool = True) -> dict:
    """Check the archive and write `<into>/<stem>/`; {"folder", "files", "bytes", "sha256", "load"}."""
    archive, into, force = opts.archive, opts.into, opts.force
    if not os.path.lexists(archive):
        raise UserError(f"{archive}: no such file")
    stem = stem_of_archive_name(archive.name)
    try:
        ordinary_name(stem)
    except UnsafeName as exc:
        raise UserError(f"{archive}: its name gives the folder name {printable(stem)!r}, not one ordinary name "
                        f"({exc}); rename the archive") from None
    dest = into / stem
    expected = _expected_digests(archive)
    _check_destination(dest, archive, force)
    made = _make_folder(into)
    try:
        locks = ArchiveLocks([dest], "another extract is writing it", "wait for it to end")  # (at once: refused)
    except OSError as exc:
        _remove_made(made)
        raise cannot(into, "write", exc) from None
    except BaseException:
        _remove_made(made)
        raise
    tmp = partial_path(dest)
    done = False
    try:
        remove_stale_partials(into, prefix=f".{stem}.")
        _check_destination(dest, archive, force)  # again, now that no other extract of it runs
        new_dir(tmp)  # (anything at this process's temporary name is removed, never followed)
        files, written, digests = _unpack(archive, stem, tmp, expected)
        sync_dir(tmp)
        try:
            old = put_in_place(tmp, dest, replace=force)
        except FileExistsError:
            raise UserError(f"{dest}: appeared while extracting; nothing replaced (--force replaces it)") from None
        if old is not None:
            remove_any(old)
        sync_dir(into)
        done = True
    except OSError as exc:
        raise cannot(into, "write", exc) from None
    finally:
        locks.release()
        if not done:
            _remove_made(made, tmp)
    result = {"folder": str(dest), "files": files, "bytes": written, "sha256": digests.sha256,
              "checked_against": sorted(f"{k} in {'SHA256SUMS' if k == 'sha256' else 'MD5SUMS'}" for k in expected),
              "load": load_commands(dest.absolute())}
    if not quiet:
        print(f"extracted {files} files ({written:,} bytes) to {dest}", file=sys.stderr)
    return result


def _check_destination(dest: Path, archive: Path, force: bool) -> None:
    """What is at `<into>/<stem>` may be replaced: nothing, or with --force a folder, a file or a
    link (the link itself), never a device, a FIFO or a socket, and never a folder that holds the
    archive being extracted or its sums."""
    try:
        st = os.lstat(dest)
    except (FileNotFoundError, NotADirectoryError):  # (--into a file: said when it is made)
        return
    except OSError as exc:
        raise cannot(dest, "look at it", exc) from None
    if not force:
        raise UserError(f"{dest}: already exists (--force replaces it)")
    if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
        raise UserError(f"{dest}: {kind_of(st.st_mode)}, never replaced; move it away")
    if stat.S_ISDIR(st.st_mode):
        inside = os.path.realpath(dest)
        for path in (archive, *(archive.with_name(s) for s, _, _ in SUM_FILES)):
            for where in (os.path.realpath(path.parent) + os.sep + path.name, os.path.realpath(path)):
                if os.path.commonpath([where, inside]) == inside:
                    raise UserError(f"{dest}: holds {path}, which --force would delete; move the archive "
                                    "and its sums out of it first")


def _make_folder(into: Path) -> list[Path]:
    """Make `into` and its missing parents; the folders made, deepest first."""
    made = []
    p = into
    while not os.path.lexists(p) and p != p.parent:
        made.append(p)
        p = p.parent
    try:
        into.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _remove_made(made)
        raise cannot(f"--into {into}", "create the folder", exc) from None
    if not into.is_dir():
        raise UserError(f"--into {into}: not a folder")
    return made


def _remove_made(made: list[Path], tmp: Path | None = None) -> None:
    """After a failure: the temporary folder, then the folders this run made, if still empty."""
    if tmp is not None and os.path.lexists(tmp):
        remove_any(tmp)
    for folder in made:
        try:
            folder.rmdir()
        except OSError:
            break


def _file_mode(archive: Path, name: str, relative: tuple[str, ...], mode: int, tmp: Path) -> int:
    """The mode a file member gets: tarfile's data filter (PEP 706) where the Python has it, else
    the same rule, then less the umask, as tar applies it."""
    if hasattr(tarfile, "data_filter"):
        info = tarfile.TarInfo("/".join(relative))
        info.mode = mode
        try:
            mode = tarfile.data_filter(info, str(tmp)).mode
        except tarfile.FilterError as exc:  # (member_parts refuses all it refuses: a second opinion)
            raise DataError(f"{archive}: member {name}: {exc}; nothing extracted") from None
    else:  # pragma: no cover - Pythons without PEP 706
        mode &= 0o755
        if not mode & 0o100:
            mode &= ~0o111
        mode |= 0o600
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def _unpack(archive: Path, stem: str, tmp: Path, expected: dict[str, str]) -> tuple[int, int, object]:
    """Every member below `<stem>/` written into `tmp`; (files, bytes, digests). Anything wrong with
    the archive is a DataError naming the member."""
    files = written = 0
    folders: list[tuple[tuple[str, ...], int]] = []
    with ArchiveStream(archive) as stream, SafeTree(tmp) as tree:
        for entry in stream.entries():
            name = printable(entry.name)
            if entry.unsafe:
                raise DataError(f"{archive}: member {name}: {entry.unsafe}; nothing extracted")
            if not entry.parts:  # `./`: the archive's root
                continue
            relative = below(entry.parts, stem)
            if relative is None:
                raise DataError(f"{archive}: member {name} is not below {stem}/ (the folder named after the archive); "
                                "nothing extracted")
            if entry.kind == "dir":
                _place(archive, name, tree.make_dir, relative)
                folders.append((relative, entry.mtime))
                continue
            if entry.data is None:
                raise DataError(f"{archive}: member {name}: {entry.size:,} bytes, more than extract "
                                f"writes ({MAX_MEMBER_BYTES:,}); nothing extracted")
            if not relative:
                raise DataError(f"{archive}: member {name} is a file where the top folder should be; nothing extracted")
            mode = _file_mode(archive, name, relative, entry.mode, tmp)
            _place(archive, name, tree.write_file, relative, entry.data, mode, entry.mtime)
            files += 1
            written += len(entry.data)
        if stream.io_error:
            raise UserError(stream.io_error)
        if stream.problem:
            raise DataError(f"{archive}: {stream.problem}; nothing extracted")
        for relative, mtime in reversed(folders):  # after their files, as tar does
            tree.set_dir_time(relative, mtime)
    digests = stream.digests()
    for kind, want in expected.items():
        if getattr(digests, kind) != want:
            raise DataError(f"{archive}: its {kind} is {getattr(digests, kind)}, the line beside it says {want}: "
                            "not the archive that was built or published; nothing extracted")
    return files, written, digests


def _place(archive: Path, name: str, write, *args) -> None:
    """A member written by `write`; a name the archive already used for a file or folder is the
    archive's fault, not the disk's."""
    try:
        write(*args)
    except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
        raise DataError(f"{archive}: member {name}: {exc.strerror} (stored twice, or as a file and a folder); "
                        "nothing extracted") from None
