"""The published layout: `<stem>.tgz` with the single top folder `<stem>/`, the root files, then
`train/<wnid>/<file>` and `val/<wnid>/<file>` (`pack.ArchiveWriter`), and beside it the sha256 of
every member (`<stem>.members.sha256`)."""

from __future__ import annotations

from ..noisy import NoisyCsv
from ..pack import ArchiveInfo, ArchiveWriter
from ..plan import PlannedImage
from .base import Context, Output, OutputFile


class Tgz(Output):
    format = "tgz"

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        self.writer = ArchiveWriter(self.final, ctx.stem, ctx.mtime, stored=ctx.size is None)
        self.info: ArchiveInfo | None = None

    @classmethod
    def final_name(cls, stem: str) -> str:
        return f"{stem}.tgz"

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
        self.writer.commit()

    def commit_members(self) -> None:
        self.writer.commit_members()

    def abort(self) -> None:
        self.writer.abort()

    def describe(self) -> dict:
        info = self.info
        return {"md5_first_mib": info.md5_first_mib, "tar_sha256": info.tar_sha256, "tar_members": info.members,
                "compressor": info.compressor,
                "members_sha256": {"file": info.members_file.name, "sha256": info.members_sha256}}
