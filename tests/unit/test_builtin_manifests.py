"""The built-in manifests of published ImageNet subsets (manifests/*.toml): each class list is its
source's, compared with the authors' own lines (tests/data, copied verbatim with their source
named) and with the lists in ../shared/reference where present; each names that source."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from imagenette_build import classes
from imagenette_build import manifest as manifests

from ..conftest import REFERENCE

DATA = Path(__file__).resolve().parents[1] / "data"
SUBSETS = ("imagenet-1k", "imagenet-r-200", "imagenet-a-200", "imagenet100-cmc")


def _literal(path: Path, name: str):
    """The Python literal assigned to `name` on the one code line of a tests/data file."""
    line = next(ln for ln in path.read_text().splitlines() if ln.startswith(f"{name} = "))
    return ast.literal_eval(line.split(" = ", 1)[1])


def _sorted_wnids() -> list[str]:
    return [c.wnid for c in classes.all_classes()]


def test_every_builtin_manifest_loads_and_names_its_source():
    for name in manifests.builtin_names():
        m = manifests.load(name)
        assert m.name == name and m.stem == name
        assert m.source is not None and m.source.url.startswith("https://"), name
    for name in SUBSETS:
        m = manifests.load(name)
        assert m.split.policy == "imagenet" and m.split.splits == ("train", "val")
        assert not m.noisy_labels.enabled and m.noisy_labels_file is None  # (docs/manifest.md says why)
        assert m.source.paper


def test_imagenet_1k_is_every_class_of_the_table():
    m = manifests.load("imagenet-1k")
    assert list(m.wnids) == _sorted_wnids() and len(m.wnids) == 1000
    # names default to the table's first synonym, as for any class written without one
    assert [c.name for c in m.classes] == [c.names[0] for c in classes.all_classes()]


def test_imagenet_r_200_is_the_set_of_the_authors_eval_py():
    wnids = _literal(DATA / "imagenet-r-eval-line21.txt", "imagenet_r_wnids")
    m = manifests.load("imagenet-r-200")
    assert isinstance(wnids, set) and len(wnids) == 200
    assert list(m.wnids) == sorted(wnids)
    assert m.source.commit in (DATA / "imagenet-r-eval-line21.txt").read_text()


def test_imagenet_a_200_is_the_authors_index_map_read_in_sorted_wnid_order():
    mapping = _literal(DATA / "imagenet-a-eval-line12.txt", "thousand_k_to_200")
    indices = [k for k in mapping if mapping[k] != -1]
    assert len(mapping) == 1000 and [mapping[k] for k in indices] == list(range(200))
    m = manifests.load("imagenet-a-200")
    assert list(m.wnids) == [_sorted_wnids()[k] for k in indices]
    assert m.source.commit in (DATA / "imagenet-a-eval-line12.txt").read_text()


def test_imagenet_a_200_by_the_keras_class_index_too():
    """The authors' indices are those of the usual 0..999 labels: the same WNIDs through
    imagenet_class_index.json (Keras), where ../shared/reference has it."""
    path = REFERENCE / "imagenet_class_index.json"
    if not path.is_file():
        pytest.skip(f"{path} is not here")
    index = json.loads(path.read_text())
    mapping = _literal(DATA / "imagenet-a-eval-line12.txt", "thousand_k_to_200")
    expected = [index[str(k)][0] for k in mapping if mapping[k] != -1]
    assert list(manifests.load("imagenet-a-200").wnids) == expected


def test_imagenet100_cmc_is_the_reference_list_in_its_order():
    path = REFERENCE / "imagenet100-cmc.txt"
    if not path.is_file():
        pytest.skip(f"{path} is not here")
    listed = [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert len(listed) == 100
    assert list(manifests.load("imagenet100-cmc").wnids) == listed


def test_the_two_200_class_lists_differ():
    """ImageNet-R and ImageNet-A both have 200 classes, not the same ones: a manifest copied from the
    other would pass a count check."""
    r, a = (set(manifests.load(n).wnids) for n in ("imagenet-r-200", "imagenet-a-200"))
    assert len(r) == len(a) == 200 and len(r & a) == 86
