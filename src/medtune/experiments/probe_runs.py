"""Probe runs (`medtune.features.probe`) in the experiment queue's database, so the leaderboard ranks them beside the
fine-tuned networks: each becomes a finished experiment with its test metrics and intervals (no validation
epochs, so rank by a test metric: ``medtune leaderboard --metric test_auc``)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from medtune.experiments.storage import QueueStorage
from medtune.runs import Run


def probe_result(run: Run) -> dict[str, Any]:
    """What the leaderboard reads of a probe run: its test metrics with intervals."""
    metrics = json.loads(run.metrics_file.read_text(encoding="utf-8"))
    intervals = metrics.get("intervals", {})

    def scored(value: Any, key: str) -> list[Any]:
        return [value, *(intervals.get(key) or [None, None])]

    return {
        "monitor": "test_auc",
        "test": {
            "auc": scored(metrics["macro"]["auc"], "auc"),
            "accuracy": scored(metrics["accuracy"], "accuracy"),
            "balanced_accuracy": scored(metrics["balanced_accuracy"], "balanced_accuracy"),
            "f1": scored(metrics["macro"]["f1"], "f1"),
            "n": metrics.get("n"),
        },
        "epochs": 0,
    }


def record_probes(storage: QueueStorage, runs: Sequence[Run], study: str) -> list[int]:
    """Add each probe run to `study` as a finished experiment; returns their ids."""
    import optuna

    storage.create_study(study, "maximize", {"kind": "queue"})
    study_id = storage.rdb.get_study_id_from_name(study)
    ids = []
    for run in runs:
        facts = json.loads((run.path / "probe.json").read_text(encoding="utf-8"))
        result = probe_result(run)
        now = time.time()
        attrs = {"config": run.read_config(), "run": str(run.path.resolve()), "result": result,
                 "probe": facts["method"], "queue_state": "finished",
                 "first_start": now - float(facts.get("seconds") or 0)}  # fmt: skip
        value = result["test"]["auc"][0]
        trial = optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE,
                                          value=0.0 if value is None else float(value), user_attrs=attrs)  # fmt: skip
        ids.append(storage.rdb.create_new_trial(study_id, template_trial=trial))
    return ids
