"""medtune.evaluate, predict, explain, report, export and serve from Python: the command line's keywords (``path=``
for the CSV path column, ``masks=``, ``method=``, ``out=``), data keys checked as ``key=value`` is, and refusals that
say what to give instead."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

import medtune
from medtune.errors import ConfigError, DataError
from tests.conftest import shared_path


def test_evaluate_reads_other_data_with_keys_and_refuses_keys_it_does_not_read(tiny_run, tmp_path):
    with pytest.raises(ConfigError, match=r"evaluate does not read epochs=; the keys it reads: reader=, path="):
        medtune.evaluate(tiny_run, shared_path("cxr3", "labels.csv"), epochs=3)
    labels = pd.read_csv(shared_path("cxr3", "labels.csv"))
    table = labels[labels["label"] != "covid"].head(40).rename(columns={"path": "picture", "label": "finding"})
    table["picture"] = [str(shared_path("cxr3", p)) for p in table["picture"]]
    table[["picture", "finding"]].to_csv(tmp_path / "site.csv", index=False)
    result = medtune.evaluate(tiny_run, tmp_path / "site.csv", path="picture", label="finding", out=tmp_path / "ev",
                              progress=False)  # fmt: skip
    assert result.metrics["n"] == 40 and (tmp_path / "ev" / "metrics.json").is_file()


def test_predict_takes_the_path_column_by_its_key_name(tiny_run, tmp_path):
    images = sorted(shared_path("cxr3", "normal").glob("*.png"))[:2]
    pd.DataFrame({"picture": list(map(str, images))}).to_csv(tmp_path / "new.csv", index=False)
    with pytest.raises(DataError, match="has no path column"):
        medtune.predict(tiny_run, tmp_path / "new.csv", progress=False, workers=0)
    predictions = medtune.predict(tiny_run, tmp_path / "new.csv", path="picture", progress=False, workers=0)
    assert [p.file for p in predictions] == list(map(str, images)) and predictions.classes == ("normal", "pneumonia")


def test_explain_and_report_write_their_files(tiny_run, tmp_path):
    image = sorted(shared_path("cxr3", "pneumonia").glob("*.png"))[0]
    maps = medtune.explain(tiny_run, image, tmp_path / "cams", method="gradcam++", progress=False)
    assert len(maps) == 1 and maps["error"].isna().all() and (tmp_path / "cams" / "explanations.csv").is_file()
    page = medtune.report(tiny_run, out=tmp_path / "page.html", mistakes=0)
    assert page == tmp_path / "page.html" and "pneumonia" in page.read_text()


def test_export_and_serve_refuse_what_they_cannot_use(tmp_path):
    with pytest.raises(ConfigError, match="give a run to export, or best=True"):
        medtune.export()
    with pytest.raises(ConfigError, match="give one or more run directories"):
        medtune.report([])
    code = f"import medtune; medtune.serve({str(tmp_path / 'nope')!r}, port=0)"
    served = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert (
        served.returncode != 0 and "nope is not a run directory" in served.stderr
    )  # refused before anything is served
