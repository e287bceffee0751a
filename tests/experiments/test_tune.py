"""medtune.experiments.tune and ``medtune tune``: a real search on PneumoniaMNIST scaled down (32 px, a hundred
images, two epochs) that spends its budget, prunes by Hyperband, ranks by validation log loss, makes one run read
once on the test split, and continues its study when run again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medtune.errors import ConfigError
from medtune.experiments.storage import QueueStorage
from medtune.experiments.tune import parse_budget, tune, tune_space
from medtune.experiments.tune_result import ranked_trials
from tests.conftest import medtune, shared_path

#: Trials that take seconds: the working size and the data are fixed, so they are not searched.
SMALL = ("limit=96", "image_size=32", "batch_size=16", "workers=0")


def test_budgets_and_the_space_follow_the_data():
    assert parse_budget("1h30m") == 5400 and parse_budget("90s") == 90 and parse_budget("2m") == 120
    for bad in ("soon", "10s", ""):
        with pytest.raises(ConfigError, match="--budget"):
            parse_budget(bad)
    space = {d.key: d for d in tune_space({"lr": 1e-3}, ("normal", "pneumonia"), 28)}
    assert "lr" not in space and "task" not in space and space["image_size"].choices == (64, 96, 128)
    graded = {d.key: d for d in tune_space({}, ("0", "1", "2", "3", "4"), 96)}
    assert graded["task"].choices == ("classify", "ordinal") and graded["image_size"].choices == (64, 96, 128)
    assert {d.key: d for d in tune_space({}, ("a", "b", "c"), 100)}["image_size"].choices == (64, 96, 100, 128)


def test_tune_spends_its_budget_and_returns_one_run_read_once_on_test(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # run directories go under ./runs
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    data = shared_path("pneumoniamnist", "pneumoniamnist.npz")
    result = medtune("tune", data, *SMALL, "--budget", "100s", "--max-epochs", "2", "--storage", url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "result: " in result.stdout and "chosen: " in result.stdout
    run = tmp_path / "runs" / "tune-pneumoniamnist" / "result"
    summary = json.loads((run / "tune.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["split"] == ["test"] and 0 <= metrics["macro"]["auc"] <= 1  # read once, by the result
    assert (run / "guard" / "guard.json").is_file() and (run / "report" / "search.png").is_file()
    assert '<section id="search"' in (run / "report.html").read_text()  # the report shows how it was chosen
    db = QueueStorage(url)
    ranked = ranked_trials(db, "tune-pneumoniamnist")
    assert ranked and summary["validation"]["best"] == pytest.approx(ranked[0].value, abs=0.05)
    for trial in ranked:  # trials left the test split unread: their end-of-training scores are on validation
        assert json.loads((Path(trial.user_attrs["run"]) / "metrics.json").read_text())["split"] == ["val"]
    states = {t["state"] for t in summary["trials"]}
    assert "complete" in states and states <= {"complete", "pruned", "fail"}
    spent = db.study("tune-pneumoniamnist").user_attrs["spent"]
    assert 30 < spent < 160  # wall clock, the final step included
    again = tune(data, dict(k.split("=") for k in SMALL), "100s", storage=url, log=lambda line: None)
    assert again.study == "tune-pneumoniamnist" and len(summary["trials"]) <= len(again.summary["trials"]) <= len(
        summary["trials"]
    ) + 2  # its budget was spent: the same study, ranked again, at most a slot or two more  # fmt: skip
