"""WebDataset sample keys (formats/webdataset.py): unique and dot-free, as both loaders split a name,
whatever the member names; and a writer that would write one key twice stops before anything is
put in place."""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagenette_build.formats import Context
from imagenette_build.formats.webdataset import SampleKeys, WebDatasetShards
from imagenette_build.plan import PlannedImage
from imagenette_build.provenance import Origin

ORIGIN = Origin("0" * 64, "1" * 64)  # (what the worker found: not looked at here)

# The loaders' own rule (webdataset.tariterators.base_plus_ext; datasets' webdataset builder has the
# same): the key is the name up to the first dot of its base name.
BASE_PLUS_EXT = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")

NAME = st.text(st.sampled_from("aAxX0_-.~% é/\\:#"), min_size=1, max_size=8).filter(lambda s: not s.endswith("/"))
MEMBERS = st.lists(st.builds(lambda split, wnid, name: f"{split}/{wnid}/{name}", st.sampled_from(["train", "val"]),
                             st.sampled_from(["n01440764", "n02102040"]), NAME), unique=True, max_size=30)


def keys_of(members: list[str]) -> list[str]:
    key = SampleKeys(members)
    return [key(m) for m in members]


@pytest.mark.fuzz
@given(MEMBERS)
def test_keys_are_unique_dot_free_and_read_back_whole_by_the_loaders(members):
    keys = keys_of(members)
    assert len(set(keys)) == len(keys)
    for key in keys:
        for field in ("jpg", "cls", "json"):
            m = BASE_PLUS_EXT.match(f"{key}.{field}")
            assert m and m.groups() == (key, field), key
    assert keys_of(list(reversed(members))) == list(reversed(keys))  # a function of the list, not of its order


def test_plain_names_keep_their_keys_and_the_others_are_escaped():
    assert keys_of(["train/n1/n1_1.JPEG", "train/n1/n1_2.JPEG"]) == ["train/n1/n1_1", "train/n1/n1_2"]
    assert keys_of(["train/n1/n1_10744.v2.JPEG", "train/n1/x.JPEG", "train/n1/x.jpeg", "train/n1/x"]) == [
        "train/n1/n1_10744%2Ev2", "train/n1/x~JPEG", "train/n1/x~jpeg", "train/n1/x~"]


class _NoLabels:
    def of(self, member, split, wnid):
        return None, {}


def test_a_key_written_twice_is_an_internal_error_before_anything_is_put_in_place(tmp_path):
    out = WebDatasetShards(Context(tmp_path, "s", 8, 0, _NoLabels()))
    img = PlannedImage("train/n1/x.JPEG", "train", "n1", None)
    out.add_image(img, b"jpeg", ORIGIN)
    out.add_image(img, b"jpeg", ORIGIN)
    with pytest.raises(RuntimeError, match="two samples of .* have the same key"):
        out.close()
    out.abort()
    assert list(tmp_path.iterdir()) == []


def test_a_symlink_planted_at_the_temporary_folder_is_removed_as_a_link(tmp_path):
    """The shards' temporary folder has a guessable name: a symlink to a folder put there made
    the build fail (rmtree refuses a link) and a dangling one too (mkdir); it is now removed as a
    link, the folder it points to untouched, and the folder made afresh."""
    from imagenette_build.safewrite import partial_path

    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "keep.txt").write_text("theirs")
    out = tmp_path / "out"
    out.mkdir()
    for target in (theirs, tmp_path / "nowhere"):
        tmp = partial_path(out / "s-wds")
        tmp.symlink_to(target)
        shards = WebDatasetShards(Context(out, "s", 8, 0, _NoLabels()))
        assert tmp.is_dir() and not tmp.is_symlink()
        shards.abort()
        assert not os.path.lexists(tmp)
    assert os.listdir(theirs) == ["keep.txt"]
