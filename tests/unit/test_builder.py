"""The build's three functions (builder.py), in this process: `prepare` plans and touches no output,
`write` leaves every output under a temporary name only, `commit_all` puts them in place in the
commit order, and `build` reports through the Progress it is given instead of printing."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from imagenette_build import builder
from imagenette_build.errors import DataError
from imagenette_build.options import BuildOptions
from imagenette_build.progress import Progress


class Recording(Progress):
    """Quiet bars; the notes, results, warnings and commit stages kept in order."""

    def __init__(self):
        super().__init__(quiet=True)
        self.events: list[tuple[str, str]] = []

    def note(self, text):
        self.events.append(("note", text))

    def warn(self, text):
        self.events.append(("warn", text))

    def result(self, text):
        self.events.append(("result", text))

    def stage(self, name):
        self.events.append(("stage", name))


def _opts(sample, out: Path, **kw) -> BuildOptions:
    root, manifest_path = sample
    return BuildOptions(imagenet=root, manifest=str(manifest_path), sizes=(8,), out=out, jobs=1,
                        backend="threading", **kw)


def _finals(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if not p.name.startswith("."))


def test_prepare_plans_every_member_and_writes_nothing(sample, tmp_path):
    opts = _opts(sample, tmp_path / "out")
    plan = builder.prepare(opts, Recording())
    assert plan.images and not plan.missing
    assert all(img.member.split("/")[0] in ("train", "val") for img in plan.images)
    assert not (tmp_path / "out").exists()


def test_write_leaves_temporary_names_only_and_commit_puts_them_in_place(sample, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    opts = _opts(sample, out, no_cache=True)
    progress = Recording()
    plan = builder.prepare(opts, progress)
    written = builder.write(opts, plan, [], progress)
    try:
        assert _finals(out) == []  # nothing under a final name before the commit
        assert any(p.name.startswith(".") and ".partial-" in p.name for p in out.iterdir())
        reports = builder.commit_all(opts, written, progress)
    finally:
        builder._abort(written.writers)
    [report] = reports
    stem = report["stem"]
    assert _finals(out) == sorted(["MD5SUMS", "SHA256SUMS", f"{stem}.json", f"{stem}.members.sha256",
                                   f"{stem}.provenance.csv", f"{stem}.tgz", f"{stem}.README.md", f"{stem}.preview.png"])
    assert json.loads((out / f"{stem}.json").read_text())["sha256"] == report["sha256"]
    assert [name for kind, name in progress.events if kind == "stage"] == [
        "commit", "commit-archive", "commit-report", "commit-sums"]


def test_an_archive_whose_card_cannot_be_put_beside_it_is_taken_away(sample, tmp_path, monkeypatch):
    """The card is renamed in after the archive and its member list: when that fails, the archive
    goes too, with its member list, and nothing of it is left under a final name."""
    import os

    from imagenette_build.formats import tgz

    out = tmp_path / "out"
    out.mkdir()
    opts = _opts(sample, out, no_cache=True)
    progress = Recording()
    plan = builder.prepare(opts, progress)
    real = os.replace

    def failing(src, dst):
        if str(dst).endswith(".README.md"):
            raise OSError(28, "No space left on device", str(dst))
        return real(src, dst)

    monkeypatch.setattr(tgz.os, "replace", failing)
    written = builder.write(opts, plan, [], progress)
    try:
        with pytest.raises(DataError, match="cannot put it in place: No space left on device"):
            builder.commit_all(opts, written, progress)
    finally:
        builder._abort(written.writers)
    assert _finals(out) == []  # no archive, member list, card, sheet, report or sums lines
    assert not [p for p in out.iterdir() if ".partial-" in p.name]


def test_build_reports_through_its_progress_and_removes_the_default_cache(sample, tmp_path):
    out = tmp_path / "out"
    opts = _opts(sample, out)
    progress = Recording()
    [report] = builder.build(opts, builder.prepare(opts, progress), progress)
    said = [(kind, text) for kind, text in progress.events if kind in ("note", "result")]
    assert said[0][0] == "result" and said[0][1].startswith(f"wrote {out / report['archive']} (")
    assert f"{report['images']} images" in said[0][1]
    assert said[1][0] == "note" and said[1][1].startswith("removed the resize cache")  # after what was written
    assert not (out / ".imagenette-cache").exists()
    assert not [e for e in progress.events if e[0] == "warn"]


def test_a_missing_image_stops_the_build_before_anything_is_written(sample, tmp_path):
    opts = _opts(sample, tmp_path / "out")
    plan = builder.prepare(opts, Recording())
    gone = plan.images[0].member
    incomplete = replace(plan, missing=[gone])
    with pytest.raises(DataError, match=f"1 of {len(plan.images) + 1} listed images are missing"):
        builder.build(opts, incomplete, Recording())
    assert not (tmp_path / "out").exists() or _finals(tmp_path / "out") == []


def test_skip_broken_builds_without_the_missing_image_and_says_so(sample, tmp_path):
    opts = _opts(sample, tmp_path / "out", skip_broken=True)
    plan = builder.prepare(opts, Recording())
    incomplete = replace(plan, missing=["train/n01440764/gone.JPEG"])
    progress = Recording()
    [report] = builder.build(opts, incomplete, progress)
    assert report["skipped"] == [{"member": "train/n01440764/gone.JPEG", "source": None,
                                  "reason": f"missing from {plan.found_in}"}]
    [warning] = [text for kind, text in progress.events if kind == "warn"]
    assert warning.startswith("built without 1 listed images (--skip-broken)")
    assert "  skipped train/n01440764/gone.JPEG" in warning


@pytest.mark.parametrize("jobs,dry_run,started", [(2, False, True), (1, False, False), (2, True, False)])
def test_the_workers_start_before_the_scan(sample, tmp_path, monkeypatch, jobs, dry_run, started):
    """A build of more than one job starts its worker processes before it scans and plans the
    ImageNet copy, so that their start-up (an interpreter and its imports each) runs beside that
    work; one job, or a dry run, starts none."""
    from imagenette_build import api, engine, plan as plans

    events: list[str] = []
    real_init, real_plan = engine.Workers.__init__, plans.make_plan

    def workers_init(self, *args, **kw):
        events.append("workers")
        real_init(self, *args, **kw)

    def make_plan(*args, **kw):
        events.append("plan")
        return real_plan(*args, **kw)
    monkeypatch.setattr(engine.Workers, "__init__", workers_init)
    monkeypatch.setattr(plans, "make_plan", make_plan)
    opts = replace(_opts(sample, tmp_path / "out"), jobs=jobs, backend="loky", dry_run=dry_run, no_cache=True)
    result = api.run_build(opts, Recording())
    assert events == (["workers", "plan"] if started else ["plan"])
    if not dry_run:
        assert result[0]["images"] == len(builder.prepare(opts, Recording()).images)


def test_a_document_of_a_folder_that_cannot_be_written_is_named_by_its_final_path(sample, tmp_path, monkeypatch):
    """A parquet output's card cannot be made (no space for a new file): the one-line error names
    `<out>/<stem>-parquet/README.md`, not the output's temporary folder, and nothing is left."""
    from imagenette_build.formats import base

    out = tmp_path / "out"
    real = base.create_new

    def failing(path, *args, **kw):
        if Path(path).name == "README.md":
            raise OSError(28, "No space left on device", str(path))
        return real(path, *args, **kw)
    monkeypatch.setattr(base, "create_new", failing)
    opts = replace(_opts(sample, out, no_cache=True), formats=("parquet",))
    with pytest.raises(DataError) as err:
        builder.build(opts, builder.prepare(opts, Recording()), Recording())
    stem = builder.prepare(opts, Recording()).manifest.archive_stem(8)
    assert str(out / f"{stem}-parquet" / "README.md") in str(err.value) and ".partial-" not in str(err.value)
    assert _finals(out) == [] and not [p for p in out.iterdir() if ".partial-" in p.name]
