"""safepath: the one rule that turns a name from outside into a path, and the writer that cannot
leave its folder. Hostile names are generated (hypothesis); the property: a name is either refused,
or its parts are plain names that join to a path below the root."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagenette_build.safepath import NAME_MAX, SafeTree, UnsafeName, below, member_parts, ordinary_name

# Parts an attacker composes names from: separators, dot parts, look-alikes that Unicode
# normalisation folds into them, control characters, long parts, drives.
HOSTILE_PARTS = ["", ".", "..", "...", "a", "b.JPEG", "\\", "..\\..", "C:", "c:\\x", "\0", "\n", "\x1b[2J",
                 "\uff0e\uff0e", "\u2024\u2024", "\ufe52\ufe52", "\uff0e", "a\uff0fb", "\u2215", "x" * 256,
                 "é" * 128, "\udcff", "~", "$HOME", "-rf", " ", ".hidden", "a..b"]


def hostile_names():
    parts = st.lists(st.sampled_from(HOSTILE_PARTS) | st.text(max_size=6), min_size=1, max_size=6)
    return st.tuples(st.sampled_from(["", "/", "./", "//", "././", "../"]), parts,
                     st.sampled_from(["", "/", "//"])).map(lambda t: t[0] + "/".join(t[1]) + t[2])


@pytest.mark.fuzz
@given(hostile_names(), st.booleans())
def test_a_name_is_refused_or_becomes_plain_parts_below_the_root(name, is_dir):
    try:
        parts = member_parts(name, is_dir)
    except UnsafeName as exc:
        assert str(exc)
        return
    root = "/srv/into"
    joined = os.path.normpath(os.path.join(root, *parts)) if parts else root
    assert joined == root or joined.startswith(root + "/")
    assert os.path.join(root, *parts) == joined  # nothing normpath would fold: normal form
    for part in parts:
        assert part not in ("", ".", "..") and "/" not in part and "\\" not in part and "\0" not in part
        assert unicodedata.normalize("NFKC", part) not in (".", "..")
        assert len(part.encode("utf-8")) <= NAME_MAX
        assert all(ord(c) >= 32 and ord(c) != 127 for c in part)


@pytest.mark.parametrize("name, why", [
    ("ds//etc/passwd", "empty part"), ("/etc/passwd", "absolute"), ("ds/../x", "'..'"), ("ds/./x", "'.'"),
    ("ds/x/", "empty part"), ("", "empty name"), ("ds\\..\\x", "backslash"), ("C:/x", "drive"),
    ("ds/a\0b", "NUL"), ("ds/a\nb", "control"), ("ds/\uff0e\uff0e/x", "normalised"), ("ds/" + "x" * 256, "255"),
    ("ds/\udcff", "not UTF-8"), ("./", "root folder"), ("../ds/x", "'..'"), ("././ds/x", "'.'"),
])
def test_names_out_of_normal_form_are_refused_with_the_reason(name, why):
    with pytest.raises(UnsafeName, match=why):
        member_parts(name)


@pytest.mark.parametrize("name, is_dir, parts", [
    ("ds/train/n01440764/x.JPEG", False, ("ds", "train", "n01440764", "x.JPEG")),
    ("./ds/train/x.JPEG", False, ("ds", "train", "x.JPEG")),  # as `tar -C dir .` writes
    ("./", True, ()), (".", True, ()), ("ds/", True, ("ds",)), ("ds/x..y", False, ("ds", "x..y")),
    ("ds/" + "é" * 127, False, ("ds", "é" * 127)),
])
def test_normal_names(name, is_dir, parts):
    assert member_parts(name, is_dir) == parts


def test_below_the_top_folder():
    assert below(("ds", "train", "x"), "ds") == ("train", "x")
    assert below(("ds",), "ds") == ()
    assert below(("other", "x"), "ds") is None and below((), "ds") is None


@pytest.mark.parametrize("name", [".", "..", "", ".hidden", "a/b", "a\\b", "a\0", "\uff0e\uff0e", "x" * 256])
def test_an_ordinary_name_is_one_plain_visible_name(name):
    with pytest.raises(UnsafeName):
        ordinary_name(name)
    assert ordinary_name("imagenette2-160") == "imagenette2-160"


def test_the_tree_never_follows_a_link_planted_in_it(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir(), outside.mkdir()
    (root / "ds").mkdir()
    (root / "ds" / "link").symlink_to(outside)
    (root / "ds" / "file-link").symlink_to(outside / "victim")
    with SafeTree(root) as tree:
        with pytest.raises(NotADirectoryError):
            tree.write_file(("ds", "link", "x"), b"x", 0o644, 0)
        with pytest.raises(FileExistsError):
            tree.write_file(("ds", "file-link"), b"x", 0o644, 0)
        tree.write_file(("ds", "a", "b"), b"data", 0o640, 12345)
    assert list(outside.iterdir()) == []
    written = root / "ds" / "a" / "b"
    assert written.read_bytes() == b"data" and written.stat().st_mtime == 12345
    assert written.stat().st_mode & 0o777 == 0o640 & ~_umask()


def test_the_tree_refuses_a_name_twice_and_a_file_where_a_folder_goes(tmp_path):
    with SafeTree(tmp_path) as tree:
        tree.write_file(("a",), b"1", 0o644, 0)
        with pytest.raises(FileExistsError):
            tree.write_file(("a",), b"2", 0o644, 0)
        with pytest.raises(NotADirectoryError):
            tree.make_dir(("a",))
        with pytest.raises(NotADirectoryError):
            tree.write_file(("a", "b"), b"2", 0o644, 0)
        tree.make_dir(("d",))
        with pytest.raises(FileExistsError):
            tree.write_file(("d",), b"2", 0o644, 0)
    assert (tmp_path / "a").read_bytes() == b"1"


def test_the_tree_holds_one_chain_of_descriptors(tmp_path):
    before = len(os.listdir("/proc/self/fd"))
    with SafeTree(tmp_path) as tree:
        for i in range(300):
            tree.write_file(("s", f"c{i}", "x"), b"", 0o644, 0)
        assert len(os.listdir("/proc/self/fd")) <= before + 4
    assert len(os.listdir("/proc/self/fd")) == before


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_the_tree_root_must_be_a_real_folder(tmp_path):
    (tmp_path / "link").symlink_to(tmp_path)
    with pytest.raises(OSError):
        SafeTree(tmp_path / "link")
    assert Path(tmp_path).is_dir()
