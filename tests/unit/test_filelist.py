"""File lists (filelist.py): a `files` manifest's CSV, read row by row; random, mutated and
assembled lists give the listed images in order or a one-line UserError naming the file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagenette_build import filelist
from imagenette_build.errors import UserError

from .. import faultkit as fk
from ..fuzzkit import SAMPLE_CSV, WNIDS, event, mutated


CSV_ALPHABET = "abdlnrstv0123456789_/.,\"\n\r/ " + "\ufeff"


def _read_list(workdir: Path, data: bytes):
    path = workdir / "list.csv"
    path.write_bytes(data)
    try:
        listed = filelist.read_file_list(path, ("train", "val"), set(WNIDS))
    except UserError as exc:
        assert str(exc).startswith(str(path)) and "\n" not in str(exc), str(exc)
        event("UserError")
        return None
    event("read")
    return listed


def _check_list(listed, data: bytes) -> None:
    members = [li.member for li in listed]
    assert len(set(members)) == len(members)
    assert len({li.filename for li in listed}) == len(listed)
    for li in listed:
        assert li.split in ("train", "val") and li.wnid in WNIDS
        assert filelist.SAFE_NAME_RE.match(li.filename)
    # every image is a row of the file: the reader invents nothing
    text = data.decode("utf-8-sig")
    assert all(m in text for m in members)


@pytest.mark.fuzz
@given(st.binary(max_size=300))
def test_csv_random_bytes(workdir, data):
    listed = _read_list(workdir, data)
    if listed is not None:
        _check_list(listed, data)


@pytest.mark.fuzz
@given(mutated(SAMPLE_CSV.encode(), CSV_ALPHABET))
def test_csv_mutated(workdir, data):
    listed = _read_list(workdir, data)
    if listed is not None:
        _check_list(listed, data)


# mostly valid parts, so that whole lists often are valid too (then every row must come back)
_rows = st.lists(st.tuples(st.sampled_from(["train", "val"] * 10 + ["test", "", ".."]),
                           st.sampled_from(WNIDS * 10 + ["n0", "N01440764"]),
                           st.sampled_from(["unique"] * 20 + ["a.JPEG/x", ".hidden", "", "a b.JPEG", "0.JPEG"]),
                           st.sampled_from(["agree"] * 20 + ["yes", "", "disagree"])), max_size=6)


@pytest.mark.fuzz
@given(_rows, st.sampled_from(["path,is_valid"] * 3 + ["is_valid,path", "path", "paths,is_valid", "path,path"]))
def test_csv_rows_from_parts(workdir, rows, header):
    cols = header.split(",")

    def flag(split, how):
        if how in ("agree", "disagree"):
            return str((split == "val") == (how == "agree"))
        return how

    rows = [(s, w, f"{i}.JPEG" if f == "unique" else f, v) for i, (s, w, f, v) in enumerate(rows)]
    lines = [header] + [",".join(f"{s}/{w}/{f}" if c.startswith("path") else flag(s, v) for c in cols)
                        for s, w, f, v in rows]
    data = ("\n".join(lines) + "\n").encode()
    listed = _read_list(workdir, data)
    if listed is not None:
        _check_list(listed, data)
        assert len(listed) == len(rows)  # a clean list keeps every row, in order
        assert [li.member for li in listed] == [f"{s}/{w}/{f}" for s, w, f, _ in rows]


# ------------------------------------------------------------------------------ bounds


def test_file_list_is_read_row_by_row(tmp_path):
    """A 37 MB list (400,000 rows) took 637 MB to load (its bytes, its text, every row's fields, two
    dicts of names); a 300 MB one took 6.4 GB. Read row by row, only the listed images are held:
    measured 121 MB peak (VmHWM) for the whole process."""
    toml = fk.big_list_manifest(tmp_path / "m", 400_000)
    assert (tmp_path / "m" / "list.csv").stat().st_size > 35 << 20
    # The child's own peak: VmHWM belongs to the program exec'd (ru_maxrss would keep the peak of the
    # forked copy of this test process, hundreds of MB in a full run).
    code = ("import re, sys; from imagenette_build import manifest; "
            "n = len(manifest.load(sys.argv[1]).listed_images()); "
            "print(n, re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read())[1])")
    r = subprocess.run([sys.executable, "-c", code, str(toml)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    n, peak_kib = map(int, r.stdout.split())
    assert n == 400_000
    assert peak_kib < 250 << 10, f"peak RSS {peak_kib >> 10} MB"


# ------------------------------------------------------------------------------ one-line errors, by line

HEADER = "path,noisy_labels_0,is_valid\n"
ROW_T = f"train/{WNIDS[0]}/{WNIDS[0]}_1.JPEG,{WNIDS[0]},False\n"


@pytest.mark.parametrize("text,needle", [
    ("", ": the first line must be a header with a 'path' column, got 'an empty file'"),
    ("paths,is_valid\n", ": the first line must be a header with a 'path' column, got 'paths,is_valid'"),
    ("path,path\n" + "a,b\n", ": the header names a column twice"),
    (HEADER, ": the file list has a header but no images"),
    (HEADER + ROW_T + "train/x.JPEG,n0,False\n", " line 3: path 'train/x.JPEG' is not <split>/<wnid>/<file>"),
    (HEADER + f"test/{WNIDS[0]}/a.JPEG,{WNIDS[0]},False\n", " line 2: split 'test' of 'test/"),
    (HEADER + "train/n09999999/a.JPEG,n0,False\n", " line 2: class n09999999 of 'train/n09999999/a.JPEG' is not among"),
    (HEADER + ROW_T.replace("False", "True"), " line 2: is_valid=True disagrees with the split of"),
    (HEADER + ROW_T.replace("False", "yes"), " line 2: is_valid must be True or False, not 'yes'"),
    (HEADER + ROW_T + ROW_T, f" line 3: train/{WNIDS[0]}/{WNIDS[0]}_1.JPEG is listed twice (first on line 2)"),
    (HEADER + ROW_T + ROW_T.replace("train/", "val/").replace("False", "True"),
     f" line 3: image {WNIDS[0]}_1.JPEG is listed twice (first on line 2)"),  # one name in two splits
    (HEADER + ROW_T.replace(",False", ""), " line 2: 2 columns, the header has 3"),
])
def test_every_mistake_is_one_line_naming_the_file_and_line(tmp_path, text, needle):
    path = tmp_path / "list.csv"
    path.write_text(text)
    with pytest.raises(UserError) as exc:
        filelist.read_file_list(path, ("train", "val"), set(WNIDS))
    assert str(exc.value).startswith(f"{path}{needle}"), str(exc.value)


def test_a_byte_order_mark_and_crlf_lines_are_read_like_a_plain_file(tmp_path):
    path = tmp_path / "list.csv"
    path.write_bytes(b"\xef\xbb\xbf" + SAMPLE_CSV.replace("\n", "\r\n").encode())
    listed = filelist.read_file_list(path, ("train", "val"), set(WNIDS))
    assert [li.member for li in listed] == [line.split(",")[0] for line in SAMPLE_CSV.splitlines()[1:]]
    assert (listed[2].split, listed[2].wnid, listed[2].filename) == ("val", WNIDS[2], "ILSVRC2012_val_00000003.JPEG")
