"""Fitting a run's prevalence and threshold calibrations on other data (`calibrate_shift`, ``medtune calibrate RUN
DATA``), keeping them in the run, and using them: `shifted_results` for ``predict --calibration NAME`` and
`compare_calibration` for ``evaluate --calibration NAME`` (the decisions before and after). The maths and what each
kind means are in `medtune.apply.prevalence`.

DATA is read as ``evaluate`` reads other data (the run's image settings carried over, ``key=value`` reading keys);
with ``--unlabelled`` a folder is every image under it and a CSV/TSV its path column, any labels ignored.

>>> shift = calibrate_shift("runs/pneumoniamnist-tf_efficientnet_lite0", "site-b/", unlabelled=True)  # doctest: +SKIP
>>> predict("runs/pneumoniamnist-tf_efficientnet_lite0", ["site-b/"], calibration="prevalence")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medtune._io import write_json
from medtune.apply.calibrate import calibration_file
from medtune.apply.guard import load_guard, score_store
from medtune.apply.prevalence import (
    Shift,
    apply_scaling,
    binary,
    calibration_home,
    check_name,
    estimate_prior,
    fit_scaling,
)
from medtune.apply.scoring import load_model, store_probabilities
from medtune.config import load_config
from medtune.data.readers.manifest import SUFFIXES
from medtune.data.table import Table, split_labels
from medtune.errors import ConfigError, DataError
from medtune.runs import Run, TrainedModel, prepare_dataset, read_dataset_table

#: Above this share of images flagged by the run's guard, a calibration on other data carries a warning.
GUARD_WARNING = 0.5


def calibrate_shift(
    run: str | os.PathLike,
    data: str | os.PathLike,
    *,
    unlabelled: bool = False,
    labelled: int | None = None,
    name: str | None = None,
    keys: Mapping[str, Any] | None = None,
    split: str | None = None,
    progress: bool = True,
) -> Shift:
    """Fit a prevalence (``unlabelled``) or threshold calibration of `run` on `data` and keep it in the run.

    Args:
        run: the run directory.
        data: the other data: a folder, a CSV/TSV manifest or an ``.npz`` file.
        unlabelled: estimate the class prevalence without labels (EM); labels in `data` are ignored.
        labelled: use a seeded sample of this many labelled images (default: every one).
        name: its name in the run (default ``prevalence`` unlabelled, ``threshold`` with labels).
        keys: reading keys for `data` (``{"label": "finding"}``), as ``evaluate`` takes them.
        split: ``train``, ``val``, ``test`` or ``all`` of `data` (default: its test split when it has one, else all).
        progress: progress bars on a terminal.

    Raises:
        ConfigError: ``unlabelled`` with ``labelled``, a `labelled` below 2, or a bad name.
        DataError: a segmentation run, an exported model, labels asked of unlabelled data, or `labelled` more than
            the labelled images.
    """
    if unlabelled and labelled is not None:
        raise ConfigError(f"--unlabelled ignores labels, --labelled {labelled} uses them: give one of the two")
    if labelled is not None and labelled < 2:
        raise ConfigError(f"--labelled {labelled}: give how many labelled images to use, at least 2")
    name = check_name(name or ("prevalence" if unlabelled else "threshold"))
    if not Path(run).is_dir():
        raise DataError(f"{run} is not a run directory: calibrate the run itself (its validation split is needed)")
    trained = load_model(run)
    if not trained.task.labelled:
        raise DataError(f"{run} is a {trained.task.name} run: prevalence and thresholds are for classifiers")
    table = _read_data(trained, data, keys, unlabelled)
    if split is None:
        split = "test" if (table.frame["split"] == "test").any() else "all"
    table = table if split == "all" else table.subset(split)
    targets = None if unlabelled else _targets(trained, table, data)
    if targets is not None and labelled is not None:
        table, targets = _sample(table, targets, labelled, trained.config.seed, data)
    probs, flagged = _probabilities(run, trained, table, progress)
    common = {"name": name, "classes": tuple(trained.classes), "multilabel": not trained.task.single_label,
              "data": str(Path(data).resolve()), "images": len(table),
              "training_prior": _training_prior(Run(Path(run)), trained)}  # fmt: skip
    if targets is not None and (common["multilabel"] or len(trained.classes) == 2):
        shift = _thresholds(trained, targets, probs, common)
    else:
        shift = _prevalence(trained, Run(Path(run)), probs, targets, common, progress)
    shift = _with_guard(shift, flagged)
    write_json(calibration_file(run, name), {"kind": shift.kind, **shift.to_dict()})
    return shift


def _read_data(trained: TrainedModel, data: Any, keys: Mapping[str, Any] | None, unlabelled: bool) -> Table:
    """DATA's table as ``evaluate`` reads other data; unlabelled: a folder's or a manifest's images, labels ignored."""
    from medtune.apply.scoring import data_keys

    reading = load_config(overrides={**data_keys(trained.config), **(keys or {})}, data=str(data))
    path = Path(data)
    flat = unlabelled and (path.is_dir() or path.suffix.lower() in SUFFIXES)
    table = read_dataset_table(reading, labelled=False if flat else None, progress=False)  # None: a flat folder
    #   of images is read unlabelled, so that asking for its labels says what to do
    if unlabelled:
        return table.with_frame(table.frame.assign(label=None))
    if not (table.labelled or (table.multilabel and table.frame["label"].notna().all())):  # no finding is a label
        raise DataError(
            f"{data} has no labels: give a folder per class, a CSV with a label column (label=COLUMN) or an .npz, "
            "or estimate the prevalence without labels with --unlabelled"
        )
    return table


def _targets(trained: TrainedModel, table: Table, data: Any) -> np.ndarray:
    """DATA's labels matched to the run's classes: class indices (-1: unknown) or multi-hot findings."""
    targets, unmatched = trained.task.match_targets(table, tuple(trained.classes), trained.config)
    if targets.ndim == 1 and not (targets >= 0).any():
        found = sorted(unmatched)
        raise DataError(f"{data}: no label matches the run's classes {list(trained.classes)} (found {found})")
    return targets


def _sample(table: Table, targets: np.ndarray, n: int, seed: int, data: Any) -> tuple[Table, np.ndarray]:
    """A seeded sample of `n` labelled images (images whose label matches no class are left out first)."""
    known = np.flatnonzero(np.ones(len(targets), bool) if targets.ndim == 2 else targets >= 0)
    if n > len(known):
        raise DataError(f"--labelled {n}: {data} has {len(known)} image(s) labelled with the run's classes; "
                        f"give at most {len(known)}, or leave --labelled out to use them all")  # fmt: skip
    rows = np.sort(np.random.default_rng(seed).choice(known, n, replace=False))
    return table.with_frame(table.frame.iloc[rows]), targets[rows]


def _probabilities(
    run: str | os.PathLike, trained: TrainedModel, table: Table, progress: bool
) -> tuple[np.ndarray, float | None]:
    """The run's probabilities for every row of `table` (through the same prepared dataset as evaluate), and the
    share of those images its guard flags (None without a guard)."""
    dataset = prepare_dataset(trained.config, table=table, split="all", assign_missing=False, progress=progress)
    rows = np.arange(len(table))
    probs = store_probabilities(trained.model, trained.resolved.preprocessing, dataset.store, rows, trained.config,
                                trained.config.tta, trained.task.activation)  # fmt: skip
    guard = load_guard(run, trained)
    return probs, None if guard is None else float((score_store(guard, dataset.store, rows) > 1.0).mean())


def _with_guard(shift: Shift, flagged: float | None) -> Shift:
    """The calibration with the guard's share flagged, and a warning when most images are unlike the training ones:
    re-weighting the class mix assumes that only the class mix changed."""
    if flagged is None:
        return shift
    notes = shift.notes
    if flagged > GUARD_WARNING:
        notes = (*notes, f"the run's guard flags {flagged:.0%} of these images as unlike its training "
                 "images; a prevalence or threshold re-fitted here assumes that only the class mix changed, so do not "
                 "trust it without labels (medtune evaluate RUN DATA shows the guard's verdict)")  # fmt: skip
    return replace(shift, guard_flagged=round(flagged, 4), notes=notes)


def _training_prior(run: Run, trained: TrainedModel) -> tuple[float, ...]:
    """The class (multi-label: finding) prevalence of the run's training split, from its ``split.csv``."""
    frame = pd.read_csv(run.split_file, dtype=str, keep_default_na=False)
    labels = frame.loc[frame["split"] == "train", "label"]
    if trained.task.single_label:
        counts = labels.value_counts()
        return tuple(round(float(counts.get(c, 0) / max(len(labels), 1)), 6) for c in trained.classes)
    found = labels.map(lambda v: set(split_labels(v)))
    return tuple(round(float(found.map(lambda s, c=c: c in s).mean()), 6) for c in trained.classes)


def _thresholds(trained: TrainedModel, targets: np.ndarray, probs: np.ndarray, common: dict) -> Shift:
    """Thresholds re-chosen on DATA's labels by the run's rule: each finding's, or a binary run's positive class's."""
    from medtune.metrics.per_label import choose_thresholds

    classes, method = common["classes"], trained.config.threshold
    if common["multilabel"]:
        chosen, notes = choose_thresholds(targets, probs, classes, method)
    else:
        keep = targets >= 0
        chosen, notes = choose_thresholds((targets[keep] == 1)[:, None], probs[keep, 1:2], classes[1:], method)
        common["images"] = int(keep.sum())
    rule = f"{method} on the labels of DATA; a {'finding' if common['multilabel'] else classes[1]!r} is predicted " \
           "when its probability, rounded to 6 decimals, is >= its threshold"  # fmt: skip
    return Shift(kind="threshold", source="labels", thresholds=tuple(float(t) for t in chosen),
                 notes=(rule, *notes), **common)  # fmt: skip


def _prevalence(
    trained: TrainedModel, run: Run, probs: np.ndarray, targets: np.ndarray | None, common: dict, progress: bool
) -> Shift:
    """The validation-fitted scaling, the prior it carries, and DATA's prevalence (EM, or the labels' shares)."""
    dataset = prepare_dataset(trained.config, run, split="val", progress=progress)
    val_probs = store_probabilities(trained.model, trained.resolved.preprocessing, dataset.store,
                                    np.arange(len(dataset.table)), trained.config, trained.config.tta,
                                    trained.task.activation)  # fmt: skip
    val_targets = dataset.table.targets()
    if common["multilabel"]:
        return _prevalence_per_finding(probs, val_probs, val_targets, common)
    scale, notes = _scaling(val_probs, val_targets, len(common["classes"]), "class")
    prior = apply_scaling(val_probs, scale["temperature"], scale["bias"]).mean(axis=0)
    if targets is None:
        scaled = apply_scaling(probs, scale["temperature"], scale["bias"])
        estimate, iterations, converged = estimate_prior(scaled, prior)
        source = "em"
    else:
        counts = np.bincount(targets[targets >= 0], minlength=len(prior))
        estimate, iterations, converged, source = (counts + 1) / (counts.sum() + len(prior)), 0, True, "labels"
        common["images"] = int(counts.sum())
        notes.append("the prevalence of DATA's labels, add-one smoothed")
    if not converged:
        notes.append(f"EM did not converge in {iterations} iterations; the estimate is its last")
    return Shift(kind="prevalence", source=source, prior=_rounded(prior), estimate=_rounded(estimate),
                 scaling=(scale,), iterations=iterations, converged=converged, notes=tuple(notes),
                 **common)  # fmt: skip


def _prevalence_per_finding(probs: np.ndarray, val_probs: np.ndarray, val_targets: np.ndarray, common: dict) -> Shift:
    """Multi-label EM: each finding a binary classifier with its own scaling, prior and estimate."""
    scales, priors, estimates, notes, steps, converged = [], [], [], [], 0, True
    for c, name in enumerate(common["classes"]):
        scale, said = _scaling(binary(val_probs[:, c]), (val_targets[:, c] > 0.5).astype(int), 2, f"{name!r}:")
        prior = apply_scaling(binary(val_probs[:, c]), scale["temperature"], scale["bias"]).mean(axis=0)
        scaled = apply_scaling(binary(probs[:, c]), scale["temperature"], scale["bias"])
        estimate, iterations, done = estimate_prior(scaled, prior)
        scales.append(scale)
        priors.append(prior[1])
        estimates.append(estimate[1])
        notes.extend(said)
        steps, converged = max(steps, iterations), converged and done
    if not converged:
        notes.append("EM did not converge for every finding; those estimates are its last")
    return Shift(kind="prevalence", source="em", prior=_rounded(priors), estimate=_rounded(estimates),
                 scaling=tuple(scales), iterations=steps, converged=converged, notes=tuple(notes),
                 **common)  # fmt: skip


def _scaling(probs: np.ndarray, targets: np.ndarray, k: int, what: str) -> tuple[dict[str, Any], list[str]]:
    """Bias-corrected temperature scaling fitted on the validation split, or none (a note says why) when a class
    has no validation image."""
    counts = np.bincount(targets, minlength=k)
    if (counts == 0).any():
        missing = "no positive" if what.endswith(":") else "a class without"
        return {"temperature": 1.0, "bias": [0.0] * k}, [
            f"{what} {missing} validation image: its probabilities are used unscaled"
        ]
    temperature, bias = fit_scaling(probs, targets)
    return {"temperature": round(temperature, 6), "bias": [round(float(b), 6) for b in bias]}, []


def _rounded(values: Any) -> tuple[float, ...]:
    return tuple(round(float(v), 6) for v in values)


def load_shift(run: str | os.PathLike, name: str) -> Shift | None:
    """The prevalence or threshold calibration `name` of `run` (or of the run of an exported model), None when the
    run has no calibration of that name or it is a conformal one."""
    path = calibration_file(calibration_home(run), name)
    if not path.is_file():
        return None
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
        return Shift.from_dict(found) if found.get("kind") in ("prevalence", "threshold") else None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"cannot read {path} ({exc!r}); run `medtune calibrate` again") from None


def shifted_results(results: pd.DataFrame, model: Any, shift: Shift, probs: np.ndarray) -> pd.DataFrame:
    """`predict`'s rows decided by `shift`: adjusted probabilities (``prevalence``) and the labels of the
    calibration's decisions; ``attrs["calibration"]`` says which."""
    from medtune.tasks.multilabel import join_labels

    read = ~np.isnan(probs).any(axis=1)
    adjusted = shift.probabilities(np.nan_to_num(probs))
    decided = shift.decide(np.nan_to_num(probs), model.task.decode, model.thresholds)
    names = np.array(shift.classes)
    for i, name in enumerate(shift.classes):
        results[f"prob_{name}"] = np.where(read, adjusted[:, i], np.nan).round(6)
    if shift.multilabel:
        results["labels"] = [v if ok else None for v, ok in zip(join_labels(decided, names), read, strict=True)]
    else:
        results["label"] = [names[d] if ok else None for d, ok in zip(decided, read, strict=True)]
        chosen = np.take_along_axis(adjusted, decided[:, None], axis=1)[:, 0]
        results["confidence"] = np.where(read, chosen, np.nan).round(6)
    results.attrs["calibration"] = describe(shift)
    return results


def describe(shift: Shift) -> dict[str, Any]:
    """What a calibration does, for ``results.attrs`` and the command line."""
    found: dict[str, Any] = {"name": shift.name, "kind": shift.kind, "source": shift.source}
    if shift.kind == "prevalence":
        found["prevalence"] = dict(zip(shift.classes, shift.estimate or (), strict=True))
        found["note"] = "probabilities re-weighted to the prevalence of " + Path(shift.data).name
    else:
        which = shift.classes if shift.multilabel else shift.classes[1:]
        found["thresholds"] = dict(zip(which, shift.thresholds or (), strict=True))
        found["note"] = "labels at thresholds chosen on " + Path(shift.data).name
    return found


def compare_calibration(run: str | os.PathLike, name: str, model: Any, predictions: pd.DataFrame) -> dict[str, Any]:
    """The decisions on evaluated images before and after the calibration `name` (``evaluate --calibration``):
    accuracy, balanced accuracy, per-class recall and predicted share against the true share (binary and per
    finding: sensitivity, specificity, predicted-positive rate against prevalence).

    Raises:
        DataError: the run has no such calibration.
    """
    from medtune.apply.calibrate import coverage_metrics, evaluated_targets, load_calibration

    shift = load_shift(run, name)
    if shift is None:
        conformal = load_calibration(calibration_home(run), name)
        if conformal is None:
            raise DataError(unknown_calibration(run, name))
        targets, probs = evaluated_targets(predictions, conformal.classes, conformal.multilabel)
        return {"name": name, "kind": "conformal", **coverage_metrics(conformal, targets, probs)}
    targets, probs = evaluated_targets(predictions, shift.classes, shift.multilabel)
    before = _decisions_before(model, probs)
    after = shift.decide(probs, model.task.decode, model.thresholds)
    found = {"name": name, **describe(shift), "images": len(targets),
             "before": decision_metrics(targets, before, shift.classes),
             "after": decision_metrics(targets, after, shift.classes)}  # fmt: skip
    if not shift.multilabel:
        found["before"]["log_loss"] = _log_loss(targets, probs)
        found["after"]["log_loss"] = _log_loss(targets, shift.probabilities(probs))
    return found


def unknown_calibration(run: str | os.PathLike, name: str) -> str:
    """Says that `run` has no calibration `name`, listing the ones it has."""
    kept = sorted(p.stem for p in (calibration_home(run) / "calibrations").glob("*.json"))
    has = f"it has {', '.join(kept)}" if kept else "it has none"
    return f"{run} has no calibration {name!r} ({has}): run `medtune calibrate {calibration_home(run)}` first"


def _decisions_before(model: Any, probs: np.ndarray) -> np.ndarray:
    from medtune.metrics.per_label import DEFAULT_THRESHOLD, predict_labels

    if model.task.single_label:
        return model.task.decode(probs)
    return predict_labels(probs, model.thresholds or (DEFAULT_THRESHOLD,) * probs.shape[1])


def decision_metrics(targets: np.ndarray, decided: np.ndarray, classes: tuple[str, ...]) -> dict[str, Any]:
    """How decisions compare with labels: class indices (accuracy, balanced accuracy, per class recall and
    predicted against true share; binary: sensitivity and specificity of the second class) or multi-label flags
    (exact-match accuracy, mean balanced accuracy, per finding sensitivity, specificity and predicted-positive rate
    against prevalence).

    >>> decision_metrics(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), ("normal", "pneumonia"))["sensitivity"]
    1.0
    """
    if targets.ndim == 2:
        return _finding_metrics(targets.astype(bool), decided.astype(bool), classes)
    per_class = {}
    for i, name in enumerate(classes):
        mine = targets == i
        per_class[name] = {
            "recall": float((decided[mine] == i).mean()) if mine.any() else None,
            "predicted_share": float((decided == i).mean()),
            "true_share": float(mine.mean()),
        }
    recalls = [row["recall"] for row in per_class.values() if row["recall"] is not None]
    found: dict[str, Any] = {"accuracy": float((decided == targets).mean()),
                             "balanced_accuracy": float(np.mean(recalls)), "per_class": per_class}  # fmt: skip
    if len(classes) == 2:
        positive = per_class[classes[1]]
        found |= {
            "positive": classes[1],
            "sensitivity": positive["recall"],
            "specificity": per_class[classes[0]]["recall"],
            "predicted_positive_rate": positive["predicted_share"],
            "prevalence": positive["true_share"],
        }
    return found


def _finding_metrics(targets: np.ndarray, flags: np.ndarray, classes: tuple[str, ...]) -> dict[str, Any]:
    per_class, balanced = {}, []
    for c, name in enumerate(classes):
        pos, neg = targets[:, c], ~targets[:, c]
        sensitivity = float(flags[pos, c].mean()) if pos.any() else None
        specificity = float((~flags[neg, c]).mean()) if neg.any() else None
        per_class[name] = {
            "sensitivity": sensitivity,
            "specificity": specificity,
            "predicted_positive_rate": float(flags[:, c].mean()),
            "prevalence": float(pos.mean()),
        }
        if sensitivity is not None and specificity is not None:
            balanced.append((sensitivity + specificity) / 2)
    return {"accuracy": float((flags == targets).all(axis=1).mean()),
            "balanced_accuracy": float(np.mean(balanced)) if balanced else None, "per_class": per_class}  # fmt: skip


def _log_loss(targets: np.ndarray, probs: np.ndarray) -> float:
    return float(-np.log(np.clip(probs[np.arange(len(targets)), targets], 1e-12, 1.0)).mean())


def summary_line(shift: Shift) -> str:
    """One line saying what a fitted calibration found, for the command line."""
    if shift.kind == "threshold":
        which = shift.classes if shift.multilabel else shift.classes[1:]
        chosen = ", ".join(f"{c} {t:.3f}" for c, t in zip(which, shift.thresholds or (), strict=True))
        return f"thresholds chosen on {shift.images} labelled image(s): {chosen}"
    pairs = zip(shift.classes, shift.training_prior, shift.estimate or (), strict=True)
    shares = ", ".join(f"{c} {a:.1%} -> {b:.1%}" for c, a, b in pairs)
    how = f"EM, {shift.iterations} iterations" if shift.source == "em" else "from the labels"
    return f"prevalence on {shift.images} image(s) ({how}; training -> here): {shares}"
