"""``medtune probe``: logistic regression, kNN and SVM baselines on frozen features, as run directories."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table as RichTable

from medtune.cli._common import console, data_and_source
from medtune.cli._render import interval
from medtune.config import parse_overrides


def probe_command(
    arguments: Annotated[
        list[str], typer.Argument(help="DATA [RUN], then key=value: method=logreg|knn|svm|all, backbone=, label=...")
    ],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Folder of the probe runs (default runs/).")] = None,
    study: Annotated[
        str | None, typer.Option("--study", "-s", help="Also add the probes to this leaderboard study.")
    ] = None,
    storage: Annotated[str | None, typer.Option("--storage", help="The queue's database URL.")] = None,
) -> None:
    """Fit scikit-learn probes on frozen features (hyper-parameters by GridSearchCV on the training images,
    grouped by patient) and score them on the test split with 95% bootstrap intervals."""
    from medtune.features.probe import probe

    data, source, settings = data_and_source(arguments, "medtune probe")
    methods = [s.split("=", 1)[1] for s in settings if s.startswith("method=")] or ["logreg"]
    settings = [s for s in settings if not s.startswith("method=")]
    runs = probe(data, source, methods[0].split(","), parse_overrides(settings), out)
    table = RichTable(title=f"probes on {source} features: test split, 95% bootstrap intervals", title_justify="left")
    for column in ("run", "method", "best", "test AUC (macro)", "accuracy", "balanced accuracy"):
        table.add_column(column, justify="left" if column in ("run", "method", "best") else "right")
    for run in runs:
        metrics = json.loads(run.metrics_file.read_text())
        facts = json.loads((run.path / "probe.json").read_text())
        intervals = metrics["intervals"]
        values = {"auc": metrics["macro"]["auc"], "accuracy": metrics["accuracy"],
                  "balanced_accuracy": metrics["balanced_accuracy"]}  # fmt: skip
        cells = [interval(value, intervals.get(name)) for name, value in values.items()]
        best = ", ".join(f"{k}={v}" for k, v in facts["params"].items())
        table.add_row(run.path.name, facts["method"], best, *cells)
    console.print(table)
    console.print(f"runs in {runs[0].path.parent}: metrics.json, predictions.csv, probe.json; `medtune report RUN`",
                  highlight=False)  # fmt: skip
    if study or storage:
        from medtune.experiments.probe_runs import record_probes
        from medtune.experiments.storage import QueueStorage

        name = study or "probes"
        record_probes(QueueStorage(storage), runs, name)
        console.print(f"added to study {name!r}: medtune leaderboard --metric test_auc", highlight=False)
