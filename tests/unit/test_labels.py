"""Class indices and noisy labels per member (labels.py): the generated labels are the CSV's, in any
order they are asked for, and are not all held at once."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from imagenette_build import manifest as manifests
from imagenette_build.labels import NOISY_COLUMNS, Labels
from imagenette_build.noisy import NoisyCsv
from imagenette_build.plan import Plan, PlanImages, PlannedImage
from imagenette_build.sources import SourceRef

WNIDS = ("n01440764", "n01443537", "n01484850")


def _plan(tmp_path: Path, per_class: int, extra: bool = False) -> Plan:
    split = ('[split]\npolicy = "random"\nval_fraction = 0.3\nseed = 3\n'
             + ('[[split.extra]]\nname = "unsup"\nfraction = 0.5\n' if extra else ""))
    toml = tmp_path / "three.toml"
    toml.write_text('name = "three"\nstem = "three"\n' + split + "".join(f'[[classes]]\nwnid = "{w}"\n' for w in WNIDS))
    m = manifests.load_path(toml)
    images = []
    for w in WNIDS:
        for k in range(per_class):
            split_name = "val" if k % 4 == 0 else ("unsup" if extra and k % 4 == 1 else "train")
            member = f"unsup/{w}_{k}.JPEG" if split_name == "unsup" else f"{split_name}/{w}/{w}_{k}.JPEG"
            images.append(PlannedImage(member, split_name, w, SourceRef(f"/x/{w}_{k}.JPEG")))
    return Plan(m, "test", PlanImages.from_images(images))


def _csv_labels(plan: Plan) -> dict[str, dict[str, int]]:
    index = {w: i for i, w in enumerate(sorted(WNIDS))}
    return {row[0]: dict(zip(NOISY_COLUMNS, (index[w] for w in row[1:1 + len(NOISY_COLUMNS)])))
            for row in NoisyCsv(plan, plan.manifest).rows()}


@pytest.mark.parametrize("extra", [False, True])
def test_generated_labels_are_the_csvs_in_member_order_and_out_of_it(tmp_path, extra):
    plan = _plan(tmp_path, 40, extra)
    expected = _csv_labels(plan)
    assert any(v["noisy_labels_50"] != v["noisy_labels_0"] for v in expected.values())  # some flipped
    labels = Labels(plan, plan.manifest)
    assert labels.columns == list(NOISY_COLUMNS)
    images = list(plan.images)
    # in member order, each asked twice (two outputs), then backwards, then every third again
    for order in (images, images[::-1], images[::3]):
        for img in order:
            for _ in range(2):
                cls, noisy = labels.of(img.member, img.split, img.wnid)
                if img.split == "unsup":
                    assert cls is None and noisy == {}
                else:
                    assert cls.wnid == img.wnid and noisy == expected[img.member], img.member


def _held(plan: Plan) -> int:
    """Bytes a Labels holds once asked for every member."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        labels = Labels(plan, plan.manifest)
        for img in plan.images:
            labels.of(img.member, img.split, img.wnid)
        labels.of("~", "train", WNIDS[0])  # a name after every member's: the reading ends, its rows go
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_generated_labels_are_not_held_per_member(tmp_path):
    """A dict of every member's labels held ~200 bytes an image (270 MB for ImageNet-1k): now the
    flips (8 bytes a train image) and the rows being read."""
    small, large = _plan(tmp_path, 1500), _plan(tmp_path, 6000)
    held_small = _held(small)  # first: Python's free lists of small tuples fill here, not below
    per_image = (_held(large) - held_small) / (len(large.images) - len(small.images))
    assert per_image < 16, f"{per_image:.0f} bytes held an image"
