"""provenance.py: the rows as written, read back, and every way a hostile file is refused in one line."""

from __future__ import annotations

import hashlib
import os

import pytest

from imagenette_build import provenance
from imagenette_build.errors import UserError
from imagenette_build.plan import PlannedImage
from imagenette_build.provenance import COLUMNS, MAX_LINE_BYTES, Origin

IMAGES = [PlannedImage("train/n01440764/n01440764_10026.JPEG", "train", "n01440764", None),
          PlannedImage("val/n01440764/ILSVRC2012_val_00000293.JPEG", "val", "n01440764", None),
          PlannedImage("val/n01440764/a, \"renamed\" copy.JPEG", "val", "n01440764", None)]


def _written(tmp_path, recipe="original bytes"):
    final = tmp_path / "s.provenance.csv"
    w = provenance.Writer(final, tmp_path / ".s.provenance.csv.partial", recipe)
    for i, img in enumerate(IMAGES):
        w.add(img, Origin(f"{i:064x}", f"{i + 10:064x}"))
    size, sha256, md5 = w.close()
    assert not final.exists()  # under its temporary name until the commit
    w.commit()
    data = final.read_bytes()
    assert (size, sha256, md5) == (len(data), hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest())
    assert w.describe() == {"file": final.name, "sha256": sha256, "rows": 3}
    return final


def test_rows_are_written_and_read_back(tmp_path):
    path = _written(tmp_path)
    rows = [row for _, row in provenance.rows(path)]
    assert [r["source_split"] for r in rows] == ["train", "val", "unknown"]  # a renamed copy is never guessed
    assert rows[2]["member"] == IMAGES[2].member and rows[2]["source_file"] == 'a, "renamed" copy.JPEG'
    assert [r["member_sha256"] for r in rows] == [f"{i + 10:064x}" for i in range(3)]
    listing, digest = provenance.read(path)
    assert listing == {img.member: f"{i + 10:064x}" for i, img in enumerate(IMAGES)}
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()


def test_fields_are_the_card_columns():
    from imagenette_build.card import COLUMNS as CARD

    assert set(provenance.FIELDS) <= set(CARD)
    f = provenance.fields(IMAGES[1], Origin("a" * 64, "b" * 64))
    assert f == {"source_split": "val", "source_file": "ILSVRC2012_val_00000293.JPEG", "source_sha256": "a" * 64,
                 "member": IMAGES[1].member, "member_sha256": "b" * 64}


def _refused(path, words: str):
    with pytest.raises(UserError) as e:
        provenance.read(path)
    assert words in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value)


def test_hostile_files_are_one_line_errors(tmp_path):
    header = ",".join(COLUMNS) + "\n"
    row = "train/n1/x.JPEG,train,n1,train,x.JPEG," + "a" * 64 + "," + "b" * 64 + ",r\n"
    cases = {
        "empty": (b"", "empty, not a provenance file"),
        "header": (b"member,sha\n" + row.encode(), "line 1: not the header of a provenance file"),
        "width": ((header + "a,b,c\n").encode(), "line 2: 3 values, not the 8 of its header"),
        "twice": ((header + row + row).encode(), "line 3: 'train/n1/x.JPEG' is listed twice"),
        "utf8": (header.encode() + b"\xff" + row.encode(), "line 2: not a row of UTF-8 CSV"),
        "long": (header.encode() + b"x" * (MAX_LINE_BYTES + 10) + b"\n", f"line 2: longer than {MAX_LINE_BYTES:,} bytes"),
        "cut": ((header + row[:-1]).encode(), "line 2: cut short"),
    }
    for name, (data, words) in cases.items():
        path = tmp_path / f"{name}.csv"
        path.write_bytes(data)
        _refused(path, words)


def test_a_fifo_is_refused_without_waiting(tmp_path):
    path = tmp_path / "fifo.csv"
    os.mkfifo(path)
    _refused(path, "cannot read")
