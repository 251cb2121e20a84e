"""What a run tells its user (progress.py): bars and notes on stderr unless quiet; warnings always;
nothing on stdout, which carries --json."""

from __future__ import annotations

from imagenette_build.progress import Progress


def _use(progress: Progress) -> list[int]:
    with progress.bar("resize", total=3, unit="img") as bar:
        bar.update(3)
    seen = list(progress.bar("scan", iterable=[1, 2, 3]))
    with progress.bar("pack", total=5 << 20, unit_bytes=True) as bar:
        bar.update(5 << 20)
    progress.note("removed the resize cache (1 MB)")
    progress.stage("commit")
    return seen


def test_quiet_silences_bars_and_notes_but_not_warnings(capsys):
    progress = Progress(quiet=True)
    assert _use(progress) == [1, 2, 3]  # a silent bar still hands over its items
    progress.warn("built without 2 listed images")
    out, err = capsys.readouterr()
    assert out == "" and err == "imagenette-build: warning: built without 2 listed images\n"


def test_without_quiet_bars_and_notes_go_to_stderr(capsys):
    progress = Progress()
    assert _use(progress) == [1, 2, 3]
    progress.warn("built without 2 listed images")
    out, err = capsys.readouterr()
    assert out == ""
    for text in ("resize: 100%", "3/3", "img", "scan", "pack: 100%", "5.00M/5.00M ", "B/s",
                 "removed the resize cache (1 MB)\n", "imagenette-build: warning: built without 2 listed images\n"):
        assert text in err, (text, err)
    assert "commit" not in err  # a stage is for a test's Progress, not for the user
