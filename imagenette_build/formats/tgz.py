"""The published layout: `<stem>.tgz` with the single top folder `<stem>/`, the root files, then
`train/<wnid>/<file>` and `val/<wnid>/<file>` (`tarwriter.ArchiveWriter`), and beside it the sha256 of
every member (`<stem>.members.sha256`)."""

from __future__ import annotations

import os
from pathlib import Path

from .. import members
from ..noisy import NoisyCsv
from ..tarwriter import ArchiveInfo, ArchiveWriter
from ..plan import PlannedImage
from .base import Context, Output, OutputFile


class Tgz(Output):
    format = "tgz"
    # the archive's own fields at the report's top level, where verify and older tools look for them
    top_level_fields = ("archive", "archive_bytes", "sha256", "md5", "md5_first_mib", "tar_sha256", "tar_members",
                        "members_sha256")

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        self.writer = ArchiveWriter(self.final, ctx.stem, ctx.mtime, stored=ctx.size is None)
        self.info: ArchiveInfo | None = None

    @classmethod
    def final_name(cls, stem: str) -> str:
        return f"{stem}.tgz"

    @classmethod
    def final_names(cls, stem: str) -> list[tuple[str, bool]]:
        return [(cls.final_name(stem), False), (members.sidecar_name(stem), False)]

    @classmethod
    def top_level(cls, entry: dict) -> dict:
        [f] = entry["files"]
        return {"archive": f["path"], "archive_bytes": f["bytes"], "sha256": f["sha256"], "md5": f["md5"],
                **{k: entry.get(k) for k in cls.top_level_fields[4:]}}

    @classmethod
    def still_in_place(cls, out: Path, stem: str, entry) -> dict | None:
        """As `Output.still_in_place`, one archive; without its member list when that is gone."""
        entry = super().still_in_place(out, stem, entry)
        if entry is None or len(entry["files"]) != 1:
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

    def add_image(self, img: PlannedImage, data: bytes) -> None:
        self.writer.add_file(img.member, data)

    def close(self) -> list[OutputFile]:
        self.info = info = self.writer.close()
        return [OutputFile(info.path.name, info.size, info.sha256, info.md5)]

    def commit(self) -> None:
        """The old member list goes, the archive is renamed in, then its member list: no list is ever
        beside an archive it does not describe. If the list cannot be put in place, the new archive
        goes too (it is never in place without it)."""
        self.info.members_file.unlink(missing_ok=True)
        self.writer.commit()
        try:
            self.writer.commit_members()
        except OSError:
            try:
                os.unlink(self.writer.final_path)
            except OSError:
                pass
            raise

    def abort(self) -> None:
        self.writer.abort()

    def describe(self) -> dict:
        info = self.info
        return {"md5_first_mib": info.md5_first_mib, "tar_sha256": info.tar_sha256, "tar_members": info.members,
                "compressor": info.compressor,
                "members_sha256": {"file": info.members_file.name, "sha256": info.members_sha256}}
