"""CSV/TSV manifest reader on the real cxr3 labels.csv and on manifests users get wrong."""

from __future__ import annotations

import pandas as pd
import pytest

from medtune.config import load_config
from medtune.data.readers import read_table
from medtune.errors import DataError
from tests.conftest import shared_path


def _manifest(tmp_path, rows: pd.DataFrame, name: str = "labels.csv", sep: str = ",") -> str:
    """Write a manifest beside copies of nothing: paths point into ../shared/data/cxr3 absolutely."""
    path = tmp_path / name
    rows.to_csv(path, index=False, sep=sep)
    return str(path)


@pytest.fixture
def cxr3_rows() -> pd.DataFrame:
    frame = pd.read_csv(shared_path("cxr3", "labels.csv"), dtype=str, keep_default_na=False)
    frame["path"] = [str(shared_path("cxr3") / p) for p in frame["path"]]
    return frame


def test_single_label_with_patient_groups():
    table = read_table(shared_path("cxr3", "labels.csv"), load_config(label="label", group="patient_id"))
    assert table.class_counts().sum(axis=1).to_dict() == {"covid": 124, "normal": 500, "pneumonia": 500}
    assert table.frame["group"].notna().sum() == 1000  # covid rows have no patient id
    assert table.frame["path"].map(lambda p: p.endswith(".png")).all()


def test_delimited_multilabel_drops_no_finding():
    table = read_table(shared_path("cxr3", "labels.csv"), load_config(label="finding_labels", label_sep="|"))
    assert table.multilabel and "No Finding" not in table.classes
    assert {"Pneumonia", "Infiltration", "COVID-19"} <= set(table.classes)
    targets = table.targets()
    assert targets.shape == (1124, len(table.classes))
    assert targets[:, table.classes.index("Pneumonia")].sum() == 500
    normal = table.frame["id"].str.startswith("normal/").to_numpy()
    assert targets[normal].sum() == 0  # "No Finding" means no class


def test_zero_one_columns_and_tsv(tmp_path, cxr3_rows):
    rows = cxr3_rows.iloc[::50].copy()
    rows["covid"] = (rows["label"] == "covid").astype(int)
    rows["pneumonia"] = (rows["label"] == "pneumonia").astype(int)
    source = _manifest(tmp_path, rows[["path", "covid", "pneumonia"]], "labels.tsv", sep="\t")
    table = read_table(source, load_config(labels="covid,pneumonia"))
    assert table.multilabel and table.classes == ("covid", "pneumonia")
    assert table.targets().sum(axis=0).tolist() == [rows["covid"].sum(), rows["pneumonia"].sum()]


def test_relative_paths_resolve_against_the_csv_folder():
    table = read_table(shared_path("cxr3", "labels.csv"))
    assert all(str(shared_path("cxr3")) in p for p in table.frame["path"][:5])


def test_missing_label_column_lists_columns(tmp_path, cxr3_rows):
    source = _manifest(tmp_path, cxr3_rows[["path", "view"]])
    with pytest.raises(DataError, match=r"no label column.*Columns are: path, view; set label=COLUMN"):
        read_table(source)


def test_misspelled_column_suggests(tmp_path, cxr3_rows):
    with pytest.raises(DataError, match=r"no group column 'patientid'.*Did you mean 'patient_id'"):
        read_table(shared_path("cxr3", "labels.csv"), load_config(group="patientid"))


def test_missing_path_column(tmp_path, cxr3_rows):
    source = _manifest(tmp_path, cxr3_rows[["label", "view"]])
    with pytest.raises(DataError, match=r"no image path column.*set path=COLUMN"):
        read_table(source)


def test_unknown_label_names_row_and_fix(tmp_path, cxr3_rows):
    source = _manifest(tmp_path, cxr3_rows[["path", "label"]].iloc[:20])
    with pytest.raises(DataError, match=r"label\(s\) 'normal' \(first on row 1\) are not in the class list.*classes="):
        read_table(source, load_config(classes="covid,pneumonia"))


def test_empty_label_cell(tmp_path, cxr3_rows):
    rows = cxr3_rows[["path", "label"]].iloc[:10].copy()
    rows.loc[rows.index[3], "label"] = ""
    with pytest.raises(DataError, match=r"1 row\(s\) have an empty 'label' \(first on row 5\)"):
        read_table(_manifest(tmp_path, rows))


def test_not_zero_one_value(tmp_path, cxr3_rows):
    rows = cxr3_rows[["path"]].iloc[:5].copy()
    rows["covid"] = ["0", "1", "maybe", "0", "1"]
    with pytest.raises(DataError, match=r"column 'covid' must hold 0 or 1, found 'maybe' on row 4"):
        read_table(_manifest(tmp_path, rows), load_config(labels=["covid"]))


def test_header_only_and_garbage_csv(tmp_path):
    (tmp_path / "empty.csv").write_text("path,label\n")
    with pytest.raises(DataError, match=r"header but no rows"):
        read_table(tmp_path / "empty.csv")
    (tmp_path / "blank.csv").write_text("")
    with pytest.raises(DataError, match=r"cannot read .*blank\.csv as a table"):
        read_table(tmp_path / "blank.csv")


def test_unknown_split_value(tmp_path, cxr3_rows):
    rows = cxr3_rows[["path", "label"]].iloc[:4].copy()
    rows["split"] = ["train", "val", "holdout", "test"]
    with pytest.raises(DataError, match=r"unknown split value\(s\) \['holdout'\]; expected train, val or test"):
        read_table(_manifest(tmp_path, rows))


def test_duplicate_rows(tmp_path, cxr3_rows):
    rows = pd.concat([cxr3_rows[["path", "label"]].iloc[:3]] * 2)
    with pytest.raises(DataError, match=r"3 image\(s\) are listed more than once"):
        read_table(_manifest(tmp_path, rows))
