"""``medtune probe``: logistic regression, kNN and SVM baselines on frozen features, as run directories."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table as RichTable

from medtune.cli._common import (
    ConfigOption,
    JsonOption,
    PrintConfigOption,
    comma_choices,
    command_keys,
    console,
    data_and_source,
    json_mode,
    print_config,
)
from medtune.cli._render import interval
from medtune.cli.embed import FEATURE_KEYS

#: The probes `medtune probe --method` fits (`medtune.features.probe.METHODS`, and all of them).
PROBES = ("logreg", "knn", "svm", "all")


def probe_command(
    arguments: Annotated[
        list[str],
        typer.Argument(
            metavar="DATA [RUN] [KEY=VALUE]...",
            help="The data; the RUN whose network gives the features (else backbone=NAME, default "
            "tf_efficientnet_lite0); then reading keys (label=, group=, image_size=...).",
        ),
    ],
    method: Annotated[
        str, typer.Option("--method", help="Comma-separated probes (all: the three).", **comma_choices(*PROBES))
    ] = "logreg",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Folder of the probe runs (default runs/).")] = None,
    study: Annotated[
        str | None, typer.Option("--study", "-s", help="Also add the probes to this leaderboard study.")
    ] = None,
    storage: Annotated[str | None, typer.Option("--storage", help="The queue's database URL.")] = None,
    config_file: ConfigOption = None,
    show_config: PrintConfigOption = False,
    as_json: JsonOption = False,
) -> None:
    """Fit probes (logistic regression, kNN, SVM) on frozen features, each as a run.

    Scikit-learn probes on frozen features (hyper-parameters by GridSearchCV on the training images, grouped by
    patient), scored on the test split with 95% bootstrap intervals.
    """
    from medtune.features.probe import probe

    data, source, settings = data_and_source(arguments, "medtune probe")
    keys = command_keys(config_file, settings, FEATURE_KEYS, "medtune probe")
    methods = method.split(",")
    if show_config:
        print_config({"data": data, "source": source, "method": methods, **keys})
    with json_mode(as_json) as emit:
        runs = probe(data, source, methods, keys, out)
        rows = _probe_table(runs, source)
        console.print(f"runs in {runs[0].path.parent}: metrics.json, predictions.csv, probe.json; `medtune report RUN`",
                      highlight=False)  # fmt: skip
        if study or storage:
            from medtune.experiments.probe_runs import record_probes
            from medtune.experiments.storage import QueueStorage

            name = study or "probes"
            record_probes(QueueStorage(storage), runs, name)
            console.print(f"added to study {name!r}: medtune leaderboard --metric test_auc", highlight=False)
        emit(rows)


def _probe_table(runs: list, source: str) -> list[dict]:
    """Print the probes' test metrics; returns them (``--json``)."""
    table = RichTable(title=f"probes on {source} features: test split, 95% bootstrap intervals", title_justify="left")
    for column in ("run", "method", "best", "test AUC (macro)", "accuracy", "balanced accuracy"):
        table.add_column(column, justify="left" if column in ("run", "method", "best") else "right")
    rows = []
    for run in runs:
        metrics = json.loads(run.metrics_file.read_text())
        facts = json.loads((run.path / "probe.json").read_text())
        intervals = metrics["intervals"]
        values = {"auc": metrics["macro"]["auc"], "accuracy": metrics["accuracy"],
                  "balanced_accuracy": metrics["balanced_accuracy"]}  # fmt: skip
        cells = [interval(value, intervals.get(name)) for name, value in values.items()]
        best = ", ".join(f"{k}={v}" for k, v in facts["params"].items())
        table.add_row(run.path.name, facts["method"], best, *cells)
        rows.append({"run": str(run.path), "method": facts["method"], "params": facts["params"], "metrics": metrics})
    console.print(table)
    return rows
