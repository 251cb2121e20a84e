"""`ArchiveWriter`: one .tgz, its members added in the plan's order, every checksum computed while
writing.

The archive is written under a temporary name in the output folder and renamed into place only
after it is complete and synced: an interrupted run never leaves a file under the final name.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .. import members
from ..safewrite import create_new, partial_path
from .directio import DirectFile
from .pipeline import Pipeline
from .tarformat import BLOCK, RECORD, compressor_name, tar_header


@dataclass(frozen=True)
class ArchiveInfo:
    path: Path
    size: int
    sha256: str
    md5: str
    md5_first_mib: str
    tar_sha256: str
    members: int
    compressor: str  # compressor_name() of this archive
    members_file: Path  # the sha256 of every file member (`members.py`), beside the archive
    members_sha256: str  # that file's own sha256


class ArchiveWriter:
    """Write `<out>/<stem>.tgz` with the single top folder `<stem>/`.

    Members are added in the caller's order (the plan's); parent folders are added, once, before
    their first member. `stored`: stored deflate blocks instead of compression (full-size archives).
    """

    def __init__(self, final_path: Path, top: str, mtime: int, stored: bool = False):
        self.final_path = final_path
        self.top = top
        self.mtime = mtime
        self.tmp_path = partial_path(final_path)  # `.<name>.partial-<host>-<pid>`
        self._file = open(create_new(self.tmp_path), "wb")
        self.compressor = compressor_name(stored)
        # A full-size archive's bytes, as big as the sources, skip the page cache where they can.
        self._direct = DirectFile.open(self.tmp_path, self._file.fileno()) if stored else None
        self._pipe = Pipeline(self._direct or self._file, stored)
        self._tar_size = 0
        self._dirs: set[str] = set()
        self.members = 0
        self._closed = False
        sidecar = final_path.with_name(members.sidecar_name(top))
        self._member_hashes = members.Writer(sidecar, partial_path(sidecar))
        self._add_dir(top)

    def _write_tar(self, data: bytes) -> None:
        self._tar_size += len(data)
        self._pipe.write(data)

    def _add_dir(self, name: str) -> None:
        self._dirs.add(name)
        self._write_tar(tar_header(name, 0, self.mtime, is_dir=True))
        self.members += 1

    def _ensure_parents(self, name: str) -> None:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in self._dirs:
                self._add_dir(d)

    def add_file(self, relpath: str, data: bytes) -> None:
        """Add `data` as `<top>/<relpath>`."""
        self.add_chunks(relpath, len(data), (data,))

    def add_chunks(self, relpath: str, size: int, chunks: Iterable[bytes]) -> None:
        """Add `size` bytes, given in pieces, as `<top>/<relpath>`: a generated file as big as the
        plan is never held whole. ValueError if the pieces do not add up to `size`."""
        name = f"{self.top}/{relpath}"
        self._ensure_parents(name)
        self._write_tar(tar_header(name, size, self.mtime))
        written = 0
        digest = hashlib.sha256()
        for chunk in chunks:
            written += len(chunk)
            if written > size:
                break
            digest.update(chunk)
            self._write_tar(chunk)
        if written != size:
            raise ValueError(f"{relpath}: {written} bytes given, {size} announced")
        self._member_hashes.add(relpath, digest.hexdigest())
        pad = -size % BLOCK
        if pad:
            self._write_tar(b"\0" * pad)
        self.members += 1

    def close(self) -> ArchiveInfo:
        """Finish the archive under its temporary name (synced); `commit` renames it into place."""
        end = b"\0" * (2 * BLOCK)
        self._write_tar(end)
        pad = -self._tar_size % RECORD
        if pad:
            self._write_tar(b"\0" * pad)
        pipe = self._pipe
        pipe.close()
        if self._direct is not None:
            self._direct.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._member_hashes.close()
        self._closed = True
        return ArchiveInfo(self.final_path, pipe.size, pipe.sha256.hexdigest(), pipe.md5.hexdigest(),
                           pipe.md5_first.hexdigest(), pipe.tar_sha256.hexdigest(), self.members,
                           self.compressor, self._member_hashes.final_path, self._member_hashes.sha256)

    def commit(self) -> None:
        os.replace(self.tmp_path, self.final_path)

    def commit_members(self) -> None:
        """Put the member list in place (after the archive: `formats.Tgz.commit` says why)."""
        self._member_hashes.commit()

    def abort(self) -> None:
        """Remove the temporary file; safe to call at any point, any number of times."""
        if not self._closed:
            self._pipe.cancel()
            try:
                if self._direct is not None:
                    self._direct.discard()
                self._file.close()
            except OSError:
                pass
            self._closed = True
        self._member_hashes.abort()
        try:
            os.unlink(self.tmp_path)
        except FileNotFoundError:
            pass
