"""The published layout: `<stem>.tgz` with the single top folder `<stem>/`, the root files, then
`train/<wnid>/<file>` and `val/<wnid>/<file>` (`tarwriter.ArchiveWriter`), and beside it the sha256 of
every member (`<stem>.members.sha256`), where every image member came from
(`<stem>.provenance.csv`, `provenance.py`; listed in the sums files with the archive), and its
documents: the card `<stem>.README.md` and the contact sheet `<stem>.preview.png`
(docs/datasets.md)."""

from __future__ import annotations

import os
from pathlib import Path

from .. import members, provenance
from ..noisy import NoisyCsv
from ..provenance import Origin
from ..safewrite import partial_path
from ..tarwriter import ArchiveInfo, ArchiveWriter
from ..plan import PlannedImage
from .base import Context, Output, OutputFile, write_file


class Tgz(Output):
    format = "tgz"
    # the archive's own fields at the report's top level, where verify and older tools look for them
    top_level_fields = ("archive", "archive_bytes", "sha256", "md5", "md5_first_mib", "tar_sha256", "tar_members",
                        "members_sha256", "provenance")

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        self.writer = ArchiveWriter(self.final, ctx.stem, ctx.mtime, stored=ctx.size is None)
        self.info: ArchiveInfo | None = None
        self._docs: list[tuple[Path, Path]] = []  # (temporary, final) of each document written
        where = ctx.out / provenance.sidecar_name(ctx.stem)
        try:
            self.provenance = provenance.Writer(where, partial_path(where), provenance.recipe_text(ctx.size, ctx.recipe))
        except BaseException:
            self.writer.abort()
            raise

    @classmethod
    def final_name(cls, stem: str) -> str:
        return f"{stem}.tgz"

    @classmethod
    def final_names(cls, stem: str) -> list[tuple[str, bool]]:
        return [(cls.final_name(stem), False), (members.sidecar_name(stem), False),
                (provenance.sidecar_name(stem), False),
                *((name, False) for name in cls.document_names(stem).values())]

    @classmethod
    def document_names(cls, stem: str) -> dict[str, str]:
        return {"card": f"{stem}.README.md", "preview": f"{stem}.preview.png"}

    @classmethod
    def owns(cls, stem: str, path: str) -> bool:
        """The archive, its provenance and its documents (all are in the sums files)."""
        return path == provenance.sidecar_name(stem) or super().owns(stem, path)

    @classmethod
    def top_level(cls, entry: dict) -> dict:
        f = entry["files"][0]  # (the archive; then its provenance and documents)
        return {"archive": f["path"], "archive_bytes": f["bytes"], "sha256": f["sha256"], "md5": f["md5"],
                **{k: entry.get(k) for k in cls.top_level_fields[4:]}}

    @classmethod
    def still_in_place(cls, out: Path, stem: str, entry) -> dict | None:
        """As `Output.still_in_place`, the archive first, then its provenance (an earlier version's
        report lists none) and documents; without its member list or its provenance when that is
        gone."""
        files = entry.get("files") if isinstance(entry, dict) else None
        second = files[1] if isinstance(files, list) and len(files) > 1 else None
        if second is not None and not (isinstance(second, dict) and second.get("path") in
                                       cls.document_names(stem).values()):
            # the second file is its provenance only; gone (or anything else): kept without it
            if not (isinstance(second, dict) and second.get("path") == provenance.sidecar_name(stem)
                    and super().still_in_place(out, stem, {"files": [second]}) is not None):
                # (its sums lines are left as they are)
                entry = {**entry, "files": [files[0], *files[2:]], "provenance": None}
        entry = super().still_in_place(out, stem, entry)
        if entry is None or entry["files"][0]["path"] != cls.final_name(stem):
            return None
        listed = entry.get("members_sha256")
        name = members.sidecar_name(stem)
        if not (isinstance(listed, dict) and listed.get("file") == name and os.path.isfile(out / name)
                and not os.path.islink(out / name)):
            entry = {**entry, "members_sha256": None}
        return entry

    def add_root_file(self, name: str, data: bytes | NoisyCsv) -> None:
        if isinstance(data, NoisyCsv):
            self.writer.add_chunks(name, data.size, data.chunks())
        else:
            self.writer.add_file(name, data)

    def add_image(self, img: PlannedImage, data: bytes, origin: Origin) -> None:
        self.writer.add_file(img.member, data)
        self.provenance.add(img, origin)

    def close(self) -> list[OutputFile]:
        self.info = info = self.writer.close()
        rows = OutputFile(self.provenance.final_path.name, *self.provenance.close())
        return [OutputFile(info.path.name, info.size, info.sha256, info.md5), rows]

    def add_documents(self, docs: dict[str, bytes]) -> list[OutputFile]:
        """Beside the archive, under temporary names until `commit`."""
        out = []
        for kind, data in docs.items():
            name = self.document_names(self.ctx.stem)[kind]
            final = self.ctx.out / name
            self._docs.append((partial_path(final), final))
            out.append(OutputFile(name, *write_file(partial_path(final), data)))
        return out

    def commit(self) -> None:
        """The old member list, provenance and documents go, the archive is renamed in, then its
        member list, provenance and documents: none is ever beside an archive it does not describe.
        If one cannot be put in place, the new archive goes too, with what was put beside it (it is
        never in place without them)."""
        self.info.members_file.unlink(missing_ok=True)
        self.provenance.final_path.unlink(missing_ok=True)
        for name in self.document_names(self.ctx.stem).values():
            (self.ctx.out / name).unlink(missing_ok=True)
        self.writer.commit()
        placed = [self.writer.final_path]
        try:
            self.writer.commit_members()
            placed.append(self.info.members_file)
            self.provenance.commit()
            placed.append(self.provenance.final_path)
            for tmp, final in self._docs:
                os.replace(tmp, final)
                placed.append(final)
        except OSError:
            for path in placed:
                try:
                    os.unlink(path)
                except OSError:
                    pass
            raise

    def abort(self) -> None:
        self.writer.abort()
        self.provenance.abort()
        for tmp, _ in self._docs:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass

    def describe(self) -> dict:
        info = self.info
        return {"md5_first_mib": info.md5_first_mib, "tar_sha256": info.tar_sha256, "tar_members": info.members,
                "compressor": info.compressor,
                "members_sha256": {"file": info.members_file.name, "sha256": info.members_sha256},
                "provenance": self.provenance.describe()}
