"""The end of ``medtune tune``: the study's trials become one run, read once on the test split.

Finished trials are ranked by their validation log loss (``val_nll`` at the kept epoch). The best becomes the result;
with up to `ENSEMBLE` - 1 runners-up that see the same images (backbone and settings may differ; the working size
and channels may not), the mean of their validation probabilities is scored too, and the mean is kept when its
validation log loss is lower (`medtune.experiments.ensemble`). Only then is the test split read, by that one model.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from medtune._io import write_json
from medtune.errors import DataError
from medtune.experiments.storage import QueueStorage

#: Most members of the final mean.
ENSEMBLE = 3


def ranked_trials(db: QueueStorage, name: str) -> list[Any]:
    """The study's finished trials, best (lowest validation log loss) first."""
    found = [t for _, t in db.trials(db.study_ids([name])) if t.state.name == "COMPLETE" and t.value is not None]
    return sorted(found, key=lambda t: t.value)


def make_result(db: QueueStorage, name: str, log: Callable[[str], None]) -> tuple[Path, dict[str, Any], dict]:
    """Make ``runs/<study>/result`` from the ranked trials; returns it, its test metrics and ``tune.json``.

    Raises:
        DataError: no trial finished within the budget.
    """
    trials = ranked_trials(db, name)
    if not trials:
        counts = _counts(db, name)
        raise DataError(f"no trial of study {name!r} finished within the budget ({counts}); give a larger --budget, "
                        "or fewer --max-epochs, and run the same command again: it continues the study")  # fmt: skip
    best = Path(trials[0].user_attrs["run"])
    members = [best, *(Path(t.user_attrs["run"]) for t in trials[1:] if _same_input(best, Path(t.user_attrs["run"])))]
    members = members[:ENSEMBLE]
    scores = _validation_scores(members)
    use = members if len(members) > 1 and scores["mean"] < scores["best"] else members[:1]
    result = best.parent / "result"
    if result.exists():
        shutil.rmtree(result)
    if len(use) > 1:
        from medtune.experiments.ensemble import create_ensemble

        create_ensemble(use, result)
    else:
        shutil.copytree(best, result, ignore=shutil.ignore_patterns("report", "report.html", "evaluations"))
    metrics = _finish(result)
    summary = _summary(db, name, trials, use, scores, metrics)
    write_json(result / "tune.json", summary)
    from medtune.reports import write_run_report

    write_run_report(result)  # with the search's section, from tune.json
    log(f"result: {result} ({'mean of ' + str(len(use)) + ' trials' if len(use) > 1 else 'the best trial'}); "
        f"test AUC {metrics['macro']['auc']:.4f}, accuracy {metrics['accuracy']:.4f}")  # fmt: skip
    return result, metrics, summary


def _same_input(first: Path, other: Path) -> bool:
    """Whether two runs see the same images (what `medtune ensemble` requires of its members)."""
    from medtune.config.merge import validate_config
    from medtune.experiments.ensemble import INPUT_KEYS
    from medtune.runs import Run

    one, two = (validate_config(Run(path).read_config()) for path in (first, other))
    return all(getattr(one, key) == getattr(two, key) for key in INPUT_KEYS) and one.task == two.task


def _validation_scores(members: list[Path]) -> dict[str, float]:
    """The validation log loss of the best member and of the mean of the members' probabilities."""
    from medtune.apply.scoring import load_model, store_probabilities
    from medtune.runs import Run, prepare_dataset

    probs, targets = [], None
    for member in members:
        trained = load_model(member)
        val = prepare_dataset(trained.config, Run(member), split="val", progress=False)
        targets = val.table.targets()
        probs.append(store_probabilities(trained.model, trained.preprocessing, val.store, np.arange(len(targets)),
                                         trained.config, trained.config.tta, trained.task.activation))  # fmt: skip
    return {"best": _nll(targets, probs[0]), "mean": _nll(targets, np.mean(probs, axis=0)), "members": len(members)}


def _nll(targets: np.ndarray, probs: np.ndarray) -> float:
    probs = np.clip(probs, 1e-7, 1 - 1e-7)
    if targets.ndim == 2:  # multi-label: mean binary cross-entropy
        return float(-(targets * np.log(probs) + (1 - targets) * np.log(1 - probs)).mean())
    return float(-np.log(probs[np.arange(len(targets)), targets]).mean())


def _finish(result: Path) -> dict[str, Any]:
    """Read the test split once, with the result; fit its guard."""
    from medtune.apply.evaluate import evaluate
    from medtune.apply.guard import fit_guard

    metrics = evaluate(result, progress=False).metrics
    with contextlib.suppress(DataError):  # too few images for a guard: the result stands without one
        fit_guard(result, progress=False)
    return metrics


def _counts(db: QueueStorage, name: str) -> str:
    states = [t.state.name.lower() for _, t in db.trials(db.study_ids([name]))]
    return ", ".join(f"{states.count(s)} {s}" for s in sorted(set(states))) or "none ran"


def _last_value(trial: Any) -> float | None:
    """A finished trial's value; a pruned one's last reported validation log loss."""
    if trial.value is not None or not trial.intermediate_values:
        return trial.value
    return float(trial.intermediate_values[max(trial.intermediate_values)])


def _summary(
    db: QueueStorage, name: str, trials: list[Any], used: list[Path], scores: dict, metrics: dict[str, Any]
) -> dict[str, Any]:
    every = [
        {"number": t.number, "state": t.state.name.lower(), "value": _last_value(t), "params": t.params,
         "epochs": len(t.intermediate_values), "run": t.user_attrs.get("run"),
         "started": t.datetime_start.isoformat() if t.datetime_start else None,
         "finished": t.datetime_complete.isoformat() if t.datetime_complete else None,
         "note": t.user_attrs.get("error")}
        for _, t in db.trials(db.study_ids([name]))
    ]  # fmt: skip
    if len(used) > 1:
        why = f"the mean of {len(used)} trials: validation log loss {scores['mean']:.4f} against {scores['best']:.4f}"
    else:
        why = f"the best trial alone: validation log loss {scores['best']:.4f}"
        if scores["members"] > 1:
            why += f" (the mean of {scores['members']} scored {scores['mean']:.4f})"
    return {"study": name, "criterion": "validation log loss (val_nll) at each trial's kept epoch",
            "chosen": {"runs": [str(p) for p in used], "params": trials[0].params, "why": why},
            "validation": scores, "test": {"auc": metrics["macro"]["auc"], "accuracy": metrics["accuracy"],
                                           "intervals": metrics.get("intervals", {})},
            "trials": every}  # fmt: skip
