"""Labels from file names (``label_from=name``, ``label_pattern=``) on real tiles, folders and CSVs alike."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from medtune.config import load_config
from medtune.data.readers import read_table
from medtune.errors import ConfigError, DataError
from tests.conftest import medtune, shared_path

TILE_CLASSES = ("ADI", "BACK", "DEB", "LYM", "MUC", "MUS", "NORM", "STR", "TUM")
#: LC25000's names: lungaca12.jpeg, lungn7.jpeg, lungscc3.jpeg (no separator: a pattern, not label_from=name).
LC_PATTERN = r"lung(?P<label>aca|scc|n)\d+\.jpe?g$"


def test_pathology_tiles_are_labelled_by_their_name_prefix():
    tiles = shared_path("pathology-tiles")
    table = read_table(tiles, load_config(label_from="name"))
    assert table.classes == TILE_CLASSES and len(table) == 9
    assert table.frame.set_index("id")["label"]["ADI-AAQEFMRI.tif"] == "ADI"
    assert any("labels from file names" in note for note in table.notes)


def test_the_summary_lists_the_nine_tile_classes_in_colour(tmp_path):
    result = medtune("data", "summary", shared_path("pathology-tiles"), "label_from=name", "--out", tmp_path / "s.json")
    assert result.returncode in (0, 1), result.stderr  # 1: one tile per class cannot fill every split (named)
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["classes"] == list(TILE_CLASSES) and summary["images"] == 9
    assert summary["channels"] == 3 and "RGB 8-bit: 9" in result.stdout  # colour TIFF tiles stored as RGB


def test_a_pattern_reads_the_same_labels_as_the_class_folders():
    data = shared_path("lc25000-lung")
    by_folder = read_table(data).frame.set_index("id")["label"]
    by_name = read_table(data, load_config(label_pattern=LC_PATTERN)).frame.set_index("id")["label"]
    assert set(by_name) == {"aca", "n", "scc"} and len(by_name) == len(by_folder) == 600
    assert (by_folder.loc[by_name.index].str.removeprefix("lung_") == by_name).all()


def test_files_the_pattern_misses_are_named(tmp_path):
    for tile in sorted(shared_path("pathology-tiles").glob("*.tif"))[:4]:
        shutil.copy(tile, tmp_path / tile.name)
    shutil.copy(tile, tmp_path / "unnamed.tif")
    with pytest.raises(DataError, match=r"1 of 5 file name\(s\) do not match .*unnamed\.tif"):
        read_table(tmp_path, load_config(label_from="name"))


def test_a_csv_takes_labels_and_groups_from_its_path_column(tmp_path):
    tiles = sorted(shared_path("pathology-tiles").glob("*.tif"))
    pd.DataFrame({"path": [str(t) for t in tiles]}).to_csv(tmp_path / "tiles.csv", index=False)
    pattern = r"(?P<label>[A-Z]+)-(?P<group>[A-Z]{2})"
    table = read_table(tmp_path / "tiles.csv", load_config(label_pattern=pattern))
    assert table.classes == TILE_CLASSES
    assert table.frame.set_index("label").loc["ADI", "group"] == "AA"  # ADI-AAQEFMRI: slide "AA"


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"label_pattern": "(?P<label>[A-Z"}, "not a valid regular expression"),
        ({"label_pattern": "[A-Z]+-"}, "no group named label"),
        ({"label_pattern": "(?P<label>A)", "label_from": "name"}, "not both"),
    ],
)
def test_bad_patterns_are_refused_with_the_fix(keys, message):
    with pytest.raises(ConfigError, match=message):
        read_table(shared_path("pathology-tiles"), load_config(**keys))
