"""tinlib.labels: the packaged class-name lists and user label files.

Expected values are facts of the public label maps (MMAction2's tools/data label_map files, which
follow the datasets' own label files): Something-Something V1 and V2 have 174 classes, the same
174 action templates in a different order (V1: the order of its labels CSV, V2: the alphabetical
ids of its labels JSON); Kinetics-400 has 400 classes in alphabetical order.
"""
from __future__ import annotations

from importlib import resources

import pytest

from tinlib.errors import UserError
from tinlib.labels import LABEL_SETS, load_labels


@pytest.mark.parametrize("name, count", [("sthv1", 174), ("sthv2", 174), ("kinetics400", 400), ("k400", 400)])
def test_published_class_counts_without_duplicates(name, count):
    names = load_labels(name)
    assert len(names) == count
    assert len(set(names)) == count
    assert all(n == n.strip() and n for n in names)


def test_known_names_at_known_positions():
    sthv1, sthv2, k400 = load_labels("sthv1"), load_labels("sthv2"), load_labels("kinetics400")
    assert sthv1[0] == "Holding something"
    assert sthv1[1] == "Turning something upside down"
    assert sthv2[0] == "Approaching something with your camera"
    assert sthv2[173] == "Wiping something off of something"
    assert k400[0] == "abseiling" and k400[1] == "air drumming"
    assert k400[399] == "zumba"


def test_orders_of_the_three_lists():
    sthv1, sthv2, k400 = load_labels("sthv1"), load_labels("sthv2"), load_labels("k400")
    assert k400 == sorted(k400)
    assert sthv2 == sorted(sthv2)
    assert set(sthv1) == set(sthv2) and sthv1 != sthv2


def test_names_are_case_insensitive_and_aliases_agree():
    assert load_labels("K400") == load_labels("kinetics400") == load_labels("Kinetics400")


def test_label_files_are_package_resources():
    # read through importlib.resources, as an installed wheel would serve them
    folder = resources.files("tinlib.labels")
    for file_name in set(LABEL_SETS.values()):
        assert folder.joinpath(file_name).is_file(), file_name


def test_user_file(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("walking\n  running \njumping\n", encoding="utf-8")
    assert load_labels(path) == ["walking", "running", "jumping"]
    assert load_labels(str(path)) == ["walking", "running", "jumping"]


@pytest.mark.parametrize("text, words", [
    ("walking\n\njumping\n", ["line 2", "empty line"]),
    ("walking\n   \n", ["line 2", "empty line"]),
    ("", ["empty"]),
    ("walking\nrunning\nwalking\n", ["line 3", "'walking' repeats line 1"]),
])
def test_bad_user_files_name_the_file_and_line(tmp_path, text, words):
    path = tmp_path / "classes.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserError) as err:
        load_labels(path)
    message = str(err.value)
    assert str(path) in message and "\n" not in message
    for word in words:
        assert word in message


def test_missing_file_names_it_and_the_packaged_sets(tmp_path):
    with pytest.raises(UserError) as err:
        load_labels(tmp_path / "nope.txt")
    assert str(tmp_path / "nope.txt") in str(err.value) and "sthv1" in str(err.value)
