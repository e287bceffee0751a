"""``medtune crossdomain``: train on each dataset (or each domain of one table), test on every other, and read
the matrix (Cohen et al. 2020, "On the limits of cross-domain generalization in automated X-ray prediction").

Each dataset keeps its own split (grouped by patient where it has groups); labels are harmonised
(`medtune.data.harmonise`) and every run trains on the classes all datasets share. The runs are experiments of
one study on the experiment queue, so ``--workers N`` and a PostgreSQL ``--storage`` spread them, and an
interrupted study resumes. Each run is then scored on its own test split and on every other dataset's test
split (``RUN/evaluations/<domain>-test``), which gives ``matrix.csv`` / ``matrix.json`` and the page.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from medtune._io import atomic_open, write_json
from medtune.config import load_config
from medtune.errors import ConfigError, DataError
from medtune.experiments.queue import add_experiments, state_of
from medtune.experiments.storage import QueueStorage

STUDY = "crossdomain"
#: The matrix's scores, each with ``_low`` and ``_high`` (95% bootstrap interval).
SCORES = ("auc", "accuracy", "balanced_accuracy")


@dataclass(frozen=True)
class Domain:
    """One training set of the matrix: its name and the configuration values that read it."""

    name: str
    values: dict[str, Any]
    held_out: str | None = None  # leave-one-domain-out: trained on every other domain, tested on this one


def plan_domains(datasets: Sequence[str], keys: Mapping[str, Any]) -> list[Domain]:
    """One domain per dataset, or, for one table with ``domain=COLUMN``, one per value of the column.

    Raises:
        ConfigError: fewer than two datasets or domains.
    """
    from medtune.runs import read_dataset_table

    if len(datasets) == 1 and keys.get("domain"):
        table = read_dataset_table(load_config(**{**keys, "data": datasets[0]}))
        names = sorted(table.frame["domain"].dropna().astype(str).unique())
        if len(names) < 2:
            raise ConfigError(f"domain={keys['domain']}: {datasets[0]} has {len(names)} domain(s); a matrix needs two")
        single = [Domain(_slug(n), {**keys, "data": datasets[0], "domains": [n]}) for n in names]
        if len(names) < 3:  # with two domains, leaving one out is training on the other
            return single
        rest = [Domain(f"all-but-{_slug(n)}", {**keys, "data": datasets[0], "domains": [m for m in names if m != n]},
                       held_out=_slug(n)) for n in names]  # fmt: skip
        return single + rest
    if len(datasets) < 2:
        raise ConfigError("give two or more datasets, or one table with domain=COLUMN, to train on one and test on "
                          "the others")  # fmt: skip
    names = [_slug(Path(d).stem if Path(d).suffix else Path(d).name) for d in datasets]
    names = [n if names.count(n) == 1 else f"{n}-{i + 1}" for i, n in enumerate(names)]
    generic = ("labels", "train", "data", "images")
    names = [_slug(Path(d).parent.name) if n in generic else n for n, d in zip(names, datasets, strict=True)]
    return [Domain(n, {**keys, "data": str(d)}) for n, d in zip(names, datasets, strict=True)]


def _slug(name: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in name).split()).lower() or "domain"


def shared_classes(domains: Sequence[Domain]) -> tuple[list[str], dict[str, list[str]]]:
    """The harmonised classes every domain has, and each domain's own (for the page).

    Raises:
        DataError: fewer than two classes are shared.
    """
    from medtune.runs import read_dataset_table

    own = {}
    for domain in (d for d in domains if d.held_out is None):
        table = read_dataset_table(load_config(**{**domain.values, "harmonise": True}), progress=False)
        no_finding = table.multilabel and bool((table.frame["label"].fillna("") == "").any())
        own[domain.name] = [*table.classes, *(["normal"] if no_finding else [])]  # findings meet single labels
    first = next(iter(own.values()))
    shared = [c for c in first if all(c in classes for classes in own.values())]
    if len(shared) < 2:
        listed = "; ".join(f"{name}: {', '.join(c)}" for name, c in own.items())
        raise DataError(f"the datasets share {len(shared)} class(es) after harmonisation ({listed}); a matrix needs "
                        "two: map the names with label_map=map.yaml")  # fmt: skip
    return shared, own


def queue_runs(domains: Sequence[Domain], shared: list[str], out: Path, storage: QueueStorage) -> list[int]:
    """The study's experiments, queued once: a second call with the same domains finds them."""
    if STUDY in storage.study_names():
        trials = [t for _, t in storage.trials(storage.study_ids([STUDY])) if state_of(t) != "retried"]
        names = [(t.user_attrs.get("config") or {}).get("name") for t in trials]
        if sorted(filter(None, names)) == sorted(d.name for d in domains):
            return [t._trial_id for t in trials]
        raise ConfigError(f"{out} holds a cross-domain study of other datasets ({names}); choose another --out")
    configs = [{**d.values, "harmonise": True, "keep_classes": shared, "name": d.name, "report": False}
               for d in domains]  # fmt: skip
    return add_experiments(storage, configs, STUDY, root=out / "runs")


def run_workers(storage: QueueStorage, workers: int) -> None:
    """Train the study's queued experiments: in this process, or with `workers` worker processes."""
    if workers <= 1:
        from medtune.experiments.worker import Worker, WorkerOptions

        Worker(storage, WorkerOptions(studies=[STUDY], name="crossdomain")).run()
        return
    command = [sys.executable, "-m", "medtune", "queue", "run", "--workers", str(workers), "--study", STUDY,
               "--storage", storage.url]  # fmt: skip
    subprocess.run(command, check=True, env={**os.environ})


def finished_runs(storage: QueueStorage, domains: Sequence[Domain]) -> dict[str, Path]:
    """The run directory of each domain's finished experiment.

    Raises:
        DataError: an experiment failed or was cancelled (its error named).
    """
    runs: dict[str, Path] = {}
    for _, trial in storage.trials(storage.study_ids([STUDY])):
        name = (trial.user_attrs.get("config") or {}).get("name")
        state = state_of(trial)
        if state == "finished":
            runs[name] = Path(trial.user_attrs["run"])
        elif state in ("failed", "cancelled") and name not in runs:
            error = (trial.user_attrs.get("error") or "").strip().splitlines()[-1:] or [state]
            retry = f"medtune queue retry {trial._trial_id}"
            raise DataError(f"the run of {name} {state}: {error[0]}; fix it and `{retry}`")
    missing = [d.name for d in domains if d.name not in runs]
    if missing:
        raise DataError(f"the runs of {', '.join(missing)} have not finished; run the same command again to go on")
    return runs


def score_pair(train_run: Path, test_run: Path, test_name: str) -> dict[str, Any]:
    """The metrics of `train_run`'s best checkpoint on `test_run`'s test split (its images, labels and split),
    written to ``TRAIN_RUN/evaluations/<test_name>-test`` so the run's report shows them."""
    from medtune.apply.evaluate import evaluate_rows, write_evaluation
    from medtune.runs import Run, load_trained, prepare_dataset

    trained = load_trained(train_run)
    test_config = load_config(**Run(test_run).read_config())
    table = prepare_dataset(test_config, Run(test_run), split="test", store=False, progress=False).table
    dataset = prepare_dataset(trained.config, table=table, assign_missing=False, progress=False)
    metrics, predictions = evaluate_rows(
        trained.model, trained.preprocessing, trained.classes, dataset.table, dataset.store, trained.config,
        trained.config.tta,
    )  # fmt: skip
    metrics["data"] = str(test_config.data)
    write_evaluation(Run(train_run).evaluations / f"{test_name}-test", metrics, predictions)
    return metrics


def matrix_row(train: str, test: str, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """One cell of the matrix: AUC, accuracy and balanced accuracy with their intervals, images, dropped labels."""
    intervals = metrics.get("intervals", {})
    values = {"auc": metrics["macro"]["auc"], "accuracy": metrics["accuracy"],
              "balanced_accuracy": metrics["balanced_accuracy"]}  # fmt: skip
    row: dict[str, Any] = {"train": train, "test": test, "in_domain": train == test, "images": metrics["n"]}
    for name in SCORES:
        low, high = (intervals.get(name) or [None, None])[:2]
        row.update({name: values[name], f"{name}_low": low, f"{name}_high": high})
    row["dropped"] = int(sum((metrics.get("unmatched_labels") or {}).values()))
    for name, per in (metrics.get("per_class") or {}).items():
        row[f"auc_{name}"] = per.get("auc")
    return row


def score_matrix(domains: Sequence[Domain], runs: Mapping[str, Path]) -> pd.DataFrame:
    """Every run on every domain's test split (its own: its metrics.json)."""
    rows = []
    tested = [d for d in domains if d.held_out is None]
    for train in domains:
        for test in tested:
            if train.held_out is not None and test.name != train.held_out:
                continue
            run = runs[train.name]
            if train.name == test.name:
                metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
            else:
                metrics = score_pair(run, runs[test.name], test.name)
            rows.append(matrix_row(train.name, test.name, metrics))
    return pd.DataFrame(rows)


def generalisation_gap(matrix: pd.DataFrame) -> pd.DataFrame:
    """Per training set: its in-domain AUC, the mean AUC on the other domains, and the gap between them."""
    rows = []
    for train, part in matrix.groupby("train", sort=False):
        own = part.loc[part["in_domain"], "auc"].mean()
        other = part.loc[~part["in_domain"], "auc"].mean()
        rows.append({"train": train, "in-domain AUC": own, "out-of-domain AUC": other, "gap": own - other})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class CrossDomainResult:
    """The matrix (one row per train x test pair), where it was written, and the shared classes."""

    matrix: pd.DataFrame
    out: Path
    classes: list[str]
    page: Path


def run_crossdomain(
    datasets: Sequence[str],
    keys: Mapping[str, Any],
    out: str | os.PathLike,
    label_map: str | os.PathLike | None = None,
    workers: int = 1,
    storage: str | None = None,
) -> CrossDomainResult:
    """Train on each dataset (or domain), test on every other, and write the matrix and its page into `out`.

    Args:
        datasets: two or more datasets, or one table with ``domain=COLUMN`` in `keys`.
        keys: settings for every run (``epochs=``, ``image_size=``; reading keys such as ``label=`` and
            ``group=`` apply where the data has those columns).
        out: the folder for the runs (``out/runs/crossdomain/``), ``matrix.csv``, ``matrix.json`` and the page.
        label_map: a YAML map of label names (``source: target``, null drops).
        workers: worker processes (1: train in this process).
        storage: the queue's database URL (default ``sqlite:///OUT/queue.db``).

    >>> run_crossdomain(["pneumoniamnist.npz", "cxr3/labels.csv"], {"label": "label"}, "xd")  # doctest: +SKIP
    """
    from medtune.data.harmonise import check_label_map, read_label_map
    from medtune.reports.crossdomain import write_crossdomain_page

    folder = Path(out).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    keys = dict(keys)
    if label_map is not None:
        keys["label_map"] = str(Path(label_map).expanduser().resolve())
    domains = plan_domains(datasets, keys)
    if label_map is not None:
        labels = [label for d in domains for label in _raw_labels(d)]
        check_label_map(read_label_map(label_map), labels, "any of the datasets", strict=True)
    shared, own = shared_classes(domains)
    queue = QueueStorage(storage or f"sqlite:///{folder / 'queue.db'}")
    queue_runs(domains, shared, folder, queue)
    run_workers(queue, workers)
    runs = finished_runs(queue, domains)
    matrix = score_matrix(domains, runs)
    with atomic_open(folder / "matrix.csv", "w", encoding="utf-8", newline="") as f:
        matrix.to_csv(f, index=False, float_format="%.6g")
    write_json(folder / "matrix.json", {
        "classes": shared, "domain_classes": own, "runs": {k: str(v) for k, v in runs.items()},
        "matrix": json.loads(matrix.to_json(orient="records")),
    })  # fmt: skip
    shortcuts = None
    if len(datasets) == 1 and keys.get("domain"):
        from medtune.features.shortcuts import probe_shortcuts

        shortcuts = probe_shortcuts(load_config(**{**keys, "data": datasets[0]}), progress=False)
    page = write_crossdomain_page(matrix, generalisation_gap(matrix), shared, own, folder / "crossdomain.html",
                                  shortcuts)  # fmt: skip
    _write_reports(runs)
    return CrossDomainResult(matrix, folder, shared, page)


def _write_reports(runs: Mapping[str, Path]) -> None:
    """Each run's report page, now with its row of the matrix (its evaluations on the other domains)."""
    from medtune.reports import write_run_report

    for run in runs.values():
        write_run_report(run)


def _raw_labels(domain: Domain) -> list[str]:
    from medtune.runs import read_dataset_table

    values = {k: v for k, v in domain.values.items() if k not in ("label_map", "harmonise", "keep_classes")}
    return list(read_dataset_table(load_config(**values), progress=False).classes)
