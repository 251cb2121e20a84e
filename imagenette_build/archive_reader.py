"""Read a .tgz (or a plain tar: a WebDataset shard) as one forward stream, safely: for `verify`,
which must never trust the archive.

One pass over the file does everything: its bytes are hashed (size, sha256, md5, md5 of the first
MiB) as they are read, inflated (`archive_bytes`: our gzip layer, which checks what tarfile's
`r|gz` does not), and the tar inside is walked with `tarfile.open(fileobj=..., mode="r|")` (no
compression detected: a plain tar holding a bzip2 stream is not inflated). Nothing is extracted,
nothing is written, and memory holds one member at a time. Every way the stream can be broken
becomes one `StreamProblem` message, never an exception out of `entries()`.

tarfile parses every header format it knows, through subclasses that check, before tarfile reads
them, the parts it would read whole or without end (`limits`): the size of a pax or GNU long-name
header, pax global headers, chains of extension headers, GNU sparse maps. Any other fault in a
header becomes a `StreamProblem` naming its offset, and a member that declares more data than the
stream holds ends the walk (tarfile would skip on past the end forever).

Members that could do harm if extracted (links, devices, FIFOs, sparse files, and every name out of
normal form: `safepath.member_parts` decides) are reported with the reason and their data is never
read; so are names longer than PATH_MAX. Members larger than any image are skipped in the stream,
never read.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .archive_bytes import RAW_CHUNK, Digests, GunzipStream, HashingReader, PlainStream, StreamProblem
from .errors import UserError, cannot, why
from .limits import (
    MAX_GLOBAL_HEADER_BYTES, MAX_HEADER_BYTES, MAX_HEADER_CHAIN, MAX_MEMBER_BYTES, MAX_MEMBERS, MAX_NAME_BYTES,
    MAX_NAMES_BYTES,
)
from .readfile import open_regular
from .safepath import UnsafeName, member_parts

__all__ = ["RAW_CHUNK", "ArchiveStream", "Digests", "Entry", "StreamProblem", "clip", "stem_of_archive_name"]

END_OF_ARCHIVE = 2 * tarfile.BLOCKSIZE  # two zero blocks close a tar
SHOWN_CHARS = 200  # of a long name or message: enough to recognise it, never the whole of it


def stem_of_archive_name(name: str) -> str:
    """`imagenette2-160.tgz` -> `imagenette2-160`: the top folder an archive of that name holds."""
    for suffix in (".tgz", ".tar.gz"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


@dataclass(frozen=True)
class Entry:
    """One tar member. `data` is set only for a safe regular file no bigger than MAX_MEMBER_BYTES.
    `name` as stored, for messages (cut to SHOWN_CHARS characters past MAX_NAME_BYTES); `parts` in
    normal form (`safepath.member_parts`; None when unsafe): what places a member."""

    name: str
    kind: str  # "file", "dir", or what else it is ("symlink", "fifo", ...)
    size: int
    data: bytes | None
    unsafe: str | None  # why extracting it could do harm, if it could
    mtime: int = 0  # as the header says (for extract, which sets it as tar does)
    mode: int = 0o644  # permission bits only
    parts: tuple[str, ...] | None = None

    @property
    def path(self) -> str | None:  # `parts` as a name: no `./`, no trailing `/`
        return None if self.parts is None else "/".join(self.parts)

    too_large = property(lambda self: self.kind == "file" and self.unsafe is None and self.data is None)


_KINDS = {
    tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink", tarfile.CHRTYPE: "character device",
    tarfile.BLKTYPE: "block device", tarfile.FIFOTYPE: "fifo", tarfile.CONTTYPE: "contiguous file",
    tarfile.GNUTYPE_SPARSE: "sparse file",
}


def _kind(info: tarfile.TarInfo) -> str:
    if info.sparse is not None:  # a GNU sparse file in any of its formats (old GNU, pax 0.0, 0.1, 1.0)
        return "sparse file"
    return _KINDS.get(info.type, f"member of type {info.type!r}")


def clip(text: str) -> str:
    """At most SHOWN_CHARS characters of `text`, marked when cut."""
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS]}... ({len(text):,} characters)"


def unsafe_reason(info: tarfile.TarInfo) -> str | None:
    """Why extracting this member could write outside the target folder or make a special file."""
    kind = _kind(info)
    if kind not in ("file", "dir"):
        target = f" -> {clip(info.linkname)}" if info.issym() or info.islnk() else ""
        return f"{kind}{target}"
    try:
        member_parts(info.name, kind == "dir")
    except UnsafeName as exc:
        return str(exc)  # (what makes the name unsafe: "a '..' part", "an absolute path", ...)
    return None


_EXTENSION_HEADERS = {
    tarfile.GNUTYPE_LONGNAME: "GNU long name header", tarfile.GNUTYPE_LONGLINK: "GNU long link name header",
    tarfile.XHDTYPE: "pax header", tarfile.XGLTYPE: "pax global header",
    tarfile.SOLARIS_XHDTYPE: "Solaris extended header",
}


class _BoundedTarInfo(tarfile.TarInfo):
    """tarfile's own parsing of every header format, with what it would read whole or without end
    checked first, and any other fault in a header (tarfile lets ValueError and IndexError out, on a
    sparse size that is not a number, a pax record length of 5,000 digits, a header cut short) made
    a StreamProblem naming its offset."""

    @classmethod
    def fromtarfile(cls, tar: _BoundedTarFile) -> tarfile.TarInfo:
        # An extension header reads the header after it recursively: a long chain of them ended in
        # a RecursionError.
        if tar.chain >= MAX_HEADER_CHAIN:
            raise StreamProblem(f"more than {MAX_HEADER_CHAIN} extension headers in a row (the next at offset "
                                f"{tar.fileobj.tell():,} of the tar)")
        tar.chain += 1
        try:
            return super().fromtarfile(tar)
        finally:
            tar.chain -= 1

    def _proc_member(self, tar: _BoundedTarFile) -> tarfile.TarInfo:
        what = _EXTENSION_HEADERS.get(self.type)
        if what is not None:
            self._check_extension(tar, what)
        try:
            return super()._proc_member(tar)
        except (ValueError, IndexError, OverflowError) as exc:
            raise StreamProblem(f"unreadable tar header at offset {self.offset:,} ({clip(str(exc))})") from None

    def _check_extension(self, tar: _BoundedTarFile, what: str) -> None:
        """Before tarfile reads the payload of an extension header whole."""
        if not 0 <= self.size <= MAX_HEADER_BYTES:
            raise StreamProblem(f"a {what} at offset {self.offset:,} of the tar declares {self.size:,} bytes, "
                                f"more than the {MAX_HEADER_BYTES:,} verify reads")
        if self.type == tarfile.XGLTYPE:  # tarfile applies them to every later member: they add up
            tar.global_bytes += self.size
            if tar.global_bytes > MAX_GLOBAL_HEADER_BYTES:
                raise StreamProblem(f"pax global headers of more than {MAX_GLOBAL_HEADER_BYTES:,} bytes in all "
                                    f"(the last at offset {self.offset:,} of the tar)")

    # GNU sparse members are refused unread, so only their framing matters, never their maps, which
    # tarfile holds whole: every entry of any number of old GNU extension blocks, and a 1.0 map of
    # any count, read on past the member's end.
    def _proc_sparse(self, tar: _BoundedTarFile) -> tarfile.TarInfo:
        _, extended, real_size = self._sparse_structs
        del self._sparse_structs
        while extended:  # the map's extension blocks: skipped
            block = tar.fileobj.read(tarfile.BLOCKSIZE)
            if len(block) < tarfile.BLOCKSIZE:
                raise tarfile.ReadError("unexpected end of data in a GNU sparse header")
            extended = bool(block[504])
        self.sparse = []
        self.offset_data = tar.fileobj.tell()
        tar.offset = self.offset_data + self._block(self.size)
        self.size = real_size
        return self

    # (Their other arguments differ between Python versions.)
    def _proc_gnusparse_00(self, member: tarfile.TarInfo, *_) -> None:
        member.sparse = []

    def _proc_gnusparse_01(self, member: tarfile.TarInfo, *_) -> None:
        member.sparse = []

    def _proc_gnusparse_10(self, member: tarfile.TarInfo, *_) -> None:
        member.sparse = []  # the 1.0 map is the start of the member's data, skipped with it


class _BoundedTarFile(tarfile.TarFile):
    tarinfo = _BoundedTarInfo
    chain = 0  # extension headers being read, each inside the one before
    global_bytes = 0  # pax global header bytes so far


class ArchiveStream:
    """`for entry in stream.entries()`, then `stream.problem` (None when the stream was sound) and
    `stream.digests()`. Open errors (no such file, permission) are UserErrors: exit code 2.
    `gzip=False`: a plain tar (a WebDataset shard), with the same bounds; `follow_symlinks=False`:
    a symlink is refused too."""

    def __init__(self, path: Path, gzip: bool = True, follow_symlinks: bool = True):
        self.path = path
        try:  # a FIFO is refused, not waited on
            self._file = os.fdopen(open_regular(path, follow_symlinks), "rb")
        except FileNotFoundError:
            raise UserError(f"{path}: no such file") from None
        except OSError as exc:
            raise cannot(path, "read", exc, UserError) from None
        self._raw = HashingReader(self._file)
        self._tar_bytes = GunzipStream(self._raw) if gzip else PlainStream(self._raw)
        self.problem: str | None = None
        self.complete = False  # every member was read (a problem, if any, came after the last one)
        self._last_member: str | None = None
        self._members = 0
        self._names_bytes = 0
        self.io_error: str | None = None  # reading the file itself failed: exit code 2, not a verdict

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ArchiveStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def digests(self) -> Digests:
        return self._raw.digests()

    bytes_read = property(lambda self: self._raw.size, doc="Bytes of the file read so far (for a progress bar).")

    def entries(self) -> Iterator[Entry]:
        """Every member in stream order. Never raises: a broken stream ends the iteration and sets
        `problem`; the whole file is read (and hashed) either way."""
        try:
            tar = _BoundedTarFile.open(fileobj=self._tar_bytes, mode="r|")
            while (info := tar.next()) is not None:
                tar.members.clear()  # stream mode keeps every TarInfo; memory must not grow with members
                yield self._entry(tar, info)  # not bound here: held while the next member is read
            self.complete = True
            self.problem = self._end_problem(tar.offset)
        except StreamProblem as exc:
            self.problem = self._where(str(exc))
        except tarfile.TarError as exc:
            inside = " inside the gzip" if self._tar_bytes.gzip else ""
            self.problem = self._where(f"not a valid tar stream{inside}: {exc}")
        except OSError as exc:
            self.io_error = f"{self.path}: cannot read: {why(exc)}"
        finally:
            self._finish_hashing()

    def _entry(self, tar: tarfile.TarFile, info: tarfile.TarInfo) -> Entry:
        name, kind = info.name, _kind(info)
        if info.size < 0:
            raise StreamProblem(f"member {clip(name)} declares a negative size ({info.size:,} bytes)")
        name_bytes = len(name.encode("utf-8", "surrogatepass"))
        if name_bytes > MAX_NAME_BYTES:
            unsafe = f"a name of {name_bytes:,} bytes, longer than the {MAX_NAME_BYTES:,} verify reads"
            name = clip(name)
        else:
            unsafe = unsafe_reason(info)
        self._hold(min(name_bytes, MAX_NAME_BYTES))
        self._last_member = name
        data = None
        if kind == "file" and unsafe is None and info.size <= MAX_MEMBER_BYTES:
            data = tar.extractfile(info).read()
        try:
            mtime = min(max(int(info.mtime), 0), 8 ** 12)
        except (TypeError, ValueError, OverflowError):
            mtime = 0
        parts = None if unsafe else member_parts(name, kind == "dir")
        return Entry(name, kind, info.size, data, unsafe, mtime, info.mode & 0o777, parts)

    def _hold(self, name_bytes: int) -> None:
        """Count a member whose name the caller will hold until the end; refuse past the bounds."""
        self._members += 1
        self._names_bytes += name_bytes
        if self._members > MAX_MEMBERS:
            raise StreamProblem(f"more than {MAX_MEMBERS:,} members, more than verify holds; the rest was not read")
        if self._names_bytes > MAX_NAMES_BYTES:
            raise StreamProblem(f"member names of more than {MAX_NAMES_BYTES:,} bytes in all (at member "
                                f"{self._members:,}), more than verify holds; the rest was not read")

    def _where(self, message: str) -> str:
        return f"{message} (last member read: {self._last_member})" if self._last_member else message

    def _end_problem(self, tar_end: int) -> str | None:
        """After tarfile's last member: the rest must be the end-of-archive zeros, then (a .tgz) the
        gzip trailer, then nothing. tarfile stops quietly at a damaged header, so check here."""
        tar = self._tar_bytes
        tar.drain()
        if tar.last_nonzero >= tar_end:
            return self._where(f"damaged tar header or garbage at offset {tar_end:,} of the tar; "
                               "the members after it cannot be read")
        if tar.tar_bytes < tar_end + END_OF_ARCHIVE:
            before = " before the gzip was made?" if tar.gzip else ""
            return f"the tar has no end-of-archive marker (truncated{before})"
        trailing = tar.trailing_bytes()
        if trailing:
            return f"{trailing:,} bytes of garbage after the end of the gzip stream"
        return None

    def _finish_hashing(self) -> None:
        try:
            self._raw.drain()
        except OSError as exc:
            self.io_error = self.io_error or f"{self.path}: cannot read: {why(exc)}"

