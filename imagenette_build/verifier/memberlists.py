"""Level 3, members: every member's sha256 against the member list the build wrote beside the
archive (a member changed since the build is named without the sources), every image member's
against its row of the provenance beside the archive (`<stem>.provenance.csv`; a folder of shards:
each row's own provenance columns, `shards`), and against the published member lists of the
archive's stem that the manifest ships."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .. import members as member_lists
from ..archive_reader import stem_of_archive_name
from ..manifest import Manifest
from .report import LevelResult, counted
from .structure import StructureScan, is_junk
from .target import Target


@dataclass(frozen=True)
class PublishedMembers:
    """The sha256 of every image member of a published archive (one list may serve several
    uploads that hold the same image bytes)."""

    label: str  # "imagewoof2-320 (uploaded 2019-12-09, 2021-02)"
    digests: dict[str, str]


def published_member_lists(manifest: Manifest | None, stem: str) -> list[PublishedMembers]:
    if manifest is None:
        return []
    by_file: dict[str, list[str]] = {}
    for p in manifest.published:
        if p.members and stem_of_archive_name(p.archive) == stem:
            by_file.setdefault(p.members, []).append(p.uploaded)
    out = []
    for name, dates in by_file.items():
        digests, _ = member_lists.read(manifest.base_dir / name)
        out.append(PublishedMembers(f"{stem} (uploaded {', '.join(dates)})", digests))
    return out


@dataclass
class ListComparison:
    identical: list[str] = field(default_factory=list)
    differ: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, found: dict[str, str], listed: dict[str, str]) -> ListComparison:
        c = cls()
        for rel in sorted(listed):
            got = found.get(rel)
            (c.missing if got is None else c.identical if got == listed[rel] else c.differ).append(rel)
        c.extra = sorted(rel for rel in found if rel not in listed)
        return c

    def problems(self, named: Callable[[str], str]) -> list[str]:
        """A line per kind of difference, each member `named` (`<top>/<rel>`, `<shard>/<rel>`)."""
        return [counted(label, [named(rel) for rel in rels]) for label, rels in
                (("members differ", self.differ), ("members missing", self.missing),
                 ("members not in the list", self.extra)) if rels]

    def to_json(self) -> dict:
        return {"identical": len(self.identical), "differ": self.differ, "missing": self.missing, "extra": self.extra}


def members_level(scan: StructureScan, target: Target, published: list[PublishedMembers],
                  partial: bool = False) -> LevelResult:
    """Every member's sha256 against the build's member list (any difference fails: the archive
    changed after it was built) and against the published lists of its stem (differences fail
    when the archive claims the published images: no build report, or the published recipe).
    `scan`: a `StructureScan` or a `shards.ShardScan` (its `digests`, and `named` for messages);
    `target` a `Target` or a `ShardTarget`. `partial`: only some of the members were seen (one
    shard, samples that do not say their member): those not seen are not missing."""
    problems, notes, data = [], [], {}
    parts = []

    def listed(full: dict[str, str]) -> dict[str, str]:
        return {rel: d for rel, d in full.items() if rel in scan.digests} if partial else full

    if target.member_list_problem:
        problems.append(target.member_list_problem)
    if target.member_list is not None:
        listing = listed(target.member_list)
        c = ListComparison.of(scan.digests, listing)
        data["build_list"] = {"file": target.member_list_name, **c.to_json()}
        problems += [f"against {target.member_list_name}: {p}" for p in c.problems(scan.named)]
        parts.append(f"{len(c.identical)} of {len(listing)} members as {target.member_list_name} lists")
    images = {rel: d for rel, d in scan.digests.items() if "/" in rel and not is_junk(rel)}
    problems += list(getattr(target, "provenance_problems", ()))
    rows = getattr(target, "provenance", None)
    if rows is not None:
        name = target.provenance_name
        listing = listed(rows)
        c = ListComparison.of(images, listing)
        data["provenance"] = {"file": name, **c.to_json()}
        problems += [f"against {name}: {p}" for p in c.problems(scan.named)]
        parts.append(f"{len(c.identical)} of {len(listing)} images as {name} says")
    elif hasattr(target, "provenance") and target.report is not None and not target.provenance_problems:
        notes.append(f"no provenance to compare with ({target.report_path.name} names none: a build of an earlier "
                     "version)")
    data["published"] = []
    for pub in published:
        listing = listed(pub.digests)
        c = ListComparison.of(images, listing)
        data["published"].append({"list": pub.label, **c.to_json()})
        parts.append(f"{len(c.identical)} of {len(listing)} members identical to the published {pub.label}")
        different = c.problems(scan.named)
        if different and target.claims_published_images:
            problems += [f"against the published {pub.label}: {p}" for p in different]
        elif different:
            notes.append(f"not the published images: built with {target.recipe_note} ({target.recipe.name}); "
                         + "; ".join(different))
    if target.member_list_note:
        notes.append(target.member_list_note)
    elif not parts:
        notes.append("no member list to compare with (no build report naming one beside it, "
                     "and no published list for this name)")
    summary = "; ".join(parts) or "no member list"
    return LevelResult("members", not problems, summary, problems, notes, data)
