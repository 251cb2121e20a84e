"""The flat val folder's label files (sources/groundtruth.py): the devkit's ground truth, checked
against ILSVRC-2012's 50 images a class."""

from __future__ import annotations

import pytest

from imagenette_build.errors import UserError
from imagenette_build.sources.groundtruth import parse_devkit_ground_truth

from ... import faultkit as fk


def test_devkit_ground_truth_checks():
    labels = parse_devkit_ground_truth(fk.devkit_ground_truth(), "gt")
    assert labels["ILSVRC2012_val_00000001.JPEG"] == "n02119789"  # devkit ID 1: kit fox, not tench
    with pytest.raises(UserError, match="expected 50000 labels"):
        parse_devkit_ground_truth(fk.devkit_ground_truth(lines=49_999), "gt")
    with pytest.raises(UserError, match="does not match ILSVRC-2012.*has 49"):
        parse_devkit_ground_truth(fk.devkit_ground_truth(per_class=49), "gt")
    with pytest.raises(UserError, match="line 3: '1001' is not a devkit class ID"):
        parse_devkit_ground_truth("1\n2\n1001\n" + "1\n" * 49_997, "gt")


@pytest.mark.parametrize("word,shown", [("²", "'²'"), ("9" * 5000, "'" + "9" * 40 + "'... (5,000 characters)"),
                                        ("٣", "'٣'")])
def test_a_devkit_label_that_is_not_ascii_digits_is_one_line(word, shown):
    """'²' passed str.isdigit, then int() raised ValueError; so did 5,000 digits (a traceback)."""
    with pytest.raises(UserError, match=f"^gt line 2: {shown.replace('(', '[(]').replace(')', '[)]')} is not a devkit"):
        parse_devkit_ground_truth(f"1\n{word}\n" + "1\n" * 49_998, "gt")
