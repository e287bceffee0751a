"""medtune.features.shortcuts: the class-by-source table of a training table, single- and multi-label."""

from __future__ import annotations

import doctest

import pandas as pd

from medtune.data.readers import read_table
from medtune.data.table import create_table
from medtune.features import shortcuts
from medtune.features.shortcuts import table_shortcuts
from tests.conftest import shared_path


def test_cxr3_s_covid_images_come_from_one_source():
    table = read_table(shared_path("cxr3", "labels.csv"))  # its `source` column is read as the domain
    counts, found = table_shortcuts(table)
    assert counts.loc["covid"].max() == 124 and counts.loc["covid"].min() == 0
    assert len(found) == 1 and found[0].startswith("class covid comes only from domain ieee8023")


def test_findings_count_for_each_source_and_one_source_says_nothing():
    frame = pd.DataFrame({"path": list("abcd"), "label": ["Edema|Mass", "Mass", "", "Edema"],
                          "domain": ["x", "x", "y", "y"]})  # fmt: skip
    counts, _ = table_shortcuts(create_table(frame, multilabel=True))
    assert counts.loc["Mass", "x"] == 2 and counts.loc["Edema"].tolist() == [1, 1]
    alone = create_table(frame.assign(domain="x"), multilabel=True)
    assert table_shortcuts(alone)[0].empty and table_shortcuts(alone)[1] == []
    assert doctest.testmod(shortcuts).failed == 0
