"""``medtune calibrate RUN --coverage 0.9``: split conformal prediction sets, fitted on the run's validation split
and kept in the run by name (``RUN/calibrations/<name>.json``).

A prediction set holds every class whose conformal p-value reaches ``1 - coverage``, so on images like the
validation ones it contains the true class at least `coverage` of the time (Vovk et al. 2005; the guarantee is
marginal and holds under exchangeability). The nonconformity score is APS (Romano et al. 2020): the probability
mass of the classes ranked at or above a class, so sets grow where the network is unsure. The conformal machinery
(p-values, smoothing of ties, the sets) is ``crepes``'s `ConformalClassifier`; the run keeps the validation scores.

>>> calibration = calibrate("runs/pneumoniamnist-tf_efficientnet_lite0", coverage=0.9)  # doctest: +SKIP
>>> prediction_sets(calibration, probs)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medtune._io import write_json
from medtune.apply.scoring import load_model, store_probabilities
from medtune.errors import ConfigError, DataError, MissingDependencyError
from medtune.metrics.bootstrap import compute_bootstrap_intervals
from medtune.runs import Run, prepare_dataset

#: The calibration `calibrate` writes and `predict --sets` reads when no name is given.
DEFAULT_NAME = "conformal"
#: Seed of the smoothing of ties (the same sets for the same inputs).
SEED = 0


@dataclass(frozen=True)
class Calibration:
    """A fitted conformal calibration.

    Attributes:
        name: its name in the run (``RUN/calibrations/<name>.json``).
        coverage: the share of images whose set should hold the true class.
        scores: the APS nonconformity scores of the validation images' true classes ``(N,)``; multi-label: of
            each finding's true state, absent or present ``(N, C)``.
        classes: the run's classes (findings), in output order.
        targets: the true class of each score, for class-conditional (Mondrian) sets: each class is put in a set by
            its p-value among the validation images of that class, so every class is covered at `coverage` (None:
            one calibration for all classes, which covers the images at `coverage` on average).
    """

    name: str
    coverage: float
    scores: np.ndarray
    classes: tuple[str, ...]
    targets: np.ndarray | None = None

    @property
    def multilabel(self) -> bool:
        """One binary set per finding ({absent}, {present}, both or neither)."""
        return self.scores.ndim == 2

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "conformal", "method": "split conformal prediction (crepes), APS scores",
                "split": "val", "coverage": self.coverage, "classes": list(self.classes), "images": len(self.scores),
                "per_finding": self.multilabel, "per_class": self.targets is not None,
                "scores": np.round(self.scores.astype(float), 8).tolist(),
                **({} if self.targets is None else {"targets": self.targets.astype(int).tolist()})}  # fmt: skip


def aps_scores(probs: np.ndarray) -> np.ndarray:
    """APS nonconformity of every class of every image: the probability mass of the classes at least as probable
    as it (its own included), ``(N, K)``.

    >>> aps_scores(np.array([[0.7, 0.2, 0.1]])).round(2).tolist()
    [[0.7, 0.9, 1.0]]
    """
    order = np.argsort(-probs, axis=1, kind="stable")
    cumulative = np.cumsum(np.take_along_axis(probs, order, axis=1), axis=1)
    scores = np.empty_like(probs, dtype=np.float64)
    np.put_along_axis(scores, order, cumulative, axis=1)
    return scores


def _conformal(scores: np.ndarray) -> Any:
    try:
        from crepes import ConformalClassifier
    except ImportError:  # pragma: no cover - a dependency of medtune
        raise MissingDependencyError("conformal prediction sets need crepes: pip install crepes") from None
    return ConformalClassifier().fit(np.asarray(scores, dtype=np.float64), seed=SEED)


def prediction_sets(calibration: Calibration, probs: np.ndarray) -> np.ndarray:
    """Boolean sets ``(N, K)``: the classes whose conformal p-value reaches ``1 - coverage``; multi-label
    ``(N, C, 2)``: for each finding, whether absent and whether present is in its set (Mondrian by finding: each
    finding calibrated on its own scores)."""
    from medtune.apply.prevalence import binary

    def sets(scores: np.ndarray, probs: np.ndarray) -> np.ndarray:
        found = _conformal(scores).predict_set(aps_scores(probs), confidence=calibration.coverage, seed=SEED)
        return np.asarray(found, dtype=bool)

    if calibration.targets is not None:  # Mondrian by class: each class's column from its own images' scores
        found = [sets(calibration.scores[calibration.targets == c], probs)[:, c] for c in range(probs.shape[1])]
        return np.stack(found, axis=1)
    if not calibration.multilabel:
        return sets(calibration.scores, probs)
    return np.stack([sets(calibration.scores[:, c], binary(probs[:, c])) for c in range(len(calibration.classes))], 1)


def calibrate(
    run: str | os.PathLike,
    coverage: float = 0.9,
    name: str = DEFAULT_NAME,
    progress: bool = True,
    per_class: bool = False,
) -> Calibration:
    """Fit split conformal prediction on the run's validation split and keep it in the run under `name`.

    Args:
        per_class: class-conditional (Mondrian) sets: every class covered at `coverage`, not only the images on
            average; each class needs at least ``1 / (1 - coverage) - 1`` validation images (9 at 90%).

    Raises:
        ConfigError: `coverage` outside (0, 1), or a name that is not a plain word.
        DataError: a segmentation run (its sets would be per pixel: not done), a run without validation images, or
            `per_class` for a multi-label run or with a class too rare in validation.
    """
    if not 0 < coverage < 1:
        raise ConfigError(f"--coverage {coverage}: give the share of images whose set should hold their class, "
                          "between 0 and 1 (e.g. 0.9)")  # fmt: skip
    if not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"--name {name!r}: use letters, digits, - and _ (it names RUN/calibrations/NAME.json)")
    trained = load_model(run)
    if not trained.task.labelled:
        raise DataError(
            f"{run} is a {trained.task.name} run: conformal sets are fitted for classifiers (single-label, ordinal, "
            "and per finding for multi-label); a segmenter's would be per pixel, which medtune does not fit"
        )
    dataset = prepare_dataset(trained.config, Run(Path(run)), split="val", progress=progress)
    if len(dataset.table) < 10:
        raise DataError(f"{run} has {len(dataset.table)} validation image(s); conformal calibration needs them")
    targets = dataset.table.targets()
    probs = store_probabilities(trained.model, trained.preprocessing, dataset.store, np.arange(len(targets)),
                                trained.config, trained.config.tta, trained.task.activation)  # fmt: skip
    scores = true_scores(probs, targets)
    kept = _class_targets(targets, trained.classes, coverage, run) if per_class else None
    calibration = Calibration(name, float(coverage), scores, tuple(trained.classes), kept)
    write_json(calibration_file(run, name), calibration.to_dict())
    return calibration


def _class_targets(targets: np.ndarray, classes: tuple[str, ...], coverage: float, run: Any) -> np.ndarray:
    """The validation targets a class-conditional calibration keeps, once each class has enough images."""
    if targets.ndim != 1:
        raise DataError(f"{run} is a multi-label run: its sets are already per finding; leave out --per-class")
    need = int(np.ceil(1 / (1 - coverage))) - 1
    counts = np.bincount(targets, minlength=len(classes))
    rare = [f"{name} ({n})" for name, n in zip(classes, counts, strict=True) if n < need]
    if rare:
        raise DataError(f"--per-class at {coverage:.0%} needs at least {need} validation images of every class; "
                        f"{run} has fewer of {', '.join(rare)}: leave out --per-class or lower --coverage")  # fmt: skip
    return targets.astype(int)


def true_scores(probs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """The APS scores of the true classes ``(N,)``, or (multi-hot `targets`) of each finding's true state ``(N, C)``,
    each finding's probability read as the two-class distribution absent, present."""
    from medtune.apply.prevalence import binary

    rows = np.arange(len(targets))
    if targets.ndim == 1:
        return aps_scores(probs)[rows, targets]
    truth = (targets > 0.5).astype(int)
    return np.stack([aps_scores(binary(probs[:, c]))[rows, truth[:, c]] for c in range(targets.shape[1])], axis=1)


def calibration_file(run: str | os.PathLike, name: str = DEFAULT_NAME) -> Path:
    return Path(run) / "calibrations" / f"{name}.json"


def load_calibration(run: str | os.PathLike, name: str = DEFAULT_NAME) -> Calibration | None:
    """The conformal calibration `name` of `run` (None when it has none, or that name is another kind)."""
    path = calibration_file(run, name)
    if not path.is_file():
        return None
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
        if found.get("kind", "conformal") != "conformal":  # a prevalence or threshold one (`medtune.apply.recalibrate`)
            return None
        targets = None if found.get("targets") is None else np.asarray(found["targets"], dtype=int)
        return Calibration(found["name"], float(found["coverage"]), np.asarray(found["scores"], dtype=np.float64),
                           tuple(found["classes"]), targets)  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"cannot read {path} ({exc!r}); run `medtune calibrate {run}` again") from None


def coverage_metrics(
    calibration: Calibration, targets: np.ndarray, probs: np.ndarray, seed: int = 0, n_bootstrap: int = 1000
) -> dict[str, Any]:
    """How the sets did on labelled images: the share whose set holds the true class (with a bootstrap interval),
    the mean set size, and both per class; multi-label (multi-hot `targets`): per finding, with intervals, and
    their mean over the findings."""
    if calibration.multilabel:
        return _finding_coverage(calibration, targets, probs, seed, n_bootstrap)
    sets = prediction_sets(calibration, probs)
    hit = sets[np.arange(len(targets)), targets].astype(float)
    size = sets.sum(axis=1).astype(float)
    intervals, _ = compute_bootstrap_intervals(
        lambda w: {"coverage": w @ hit / w.sum(axis=1), "mean_set_size": w @ size / w.sum(axis=1)}, len(hit), [],
        ["coverage", "mean_set_size"], [], n_bootstrap=n_bootstrap, confidence=0.95, seed=seed,
    )  # fmt: skip
    per_class = {
        name: {"coverage": float(hit[targets == i].mean()), "mean_set_size": float(size[targets == i].mean()),
               "images": int((targets == i).sum())}
        for i, name in enumerate(calibration.classes) if (targets == i).any()
    }  # fmt: skip
    return {"name": calibration.name, "target": calibration.coverage, "coverage": float(hit.mean()),
            "mean_set_size": float(size.mean()), "intervals": {k: intervals[k] for k in ("coverage", "mean_set_size")},
            "per_class": per_class}  # fmt: skip


def _finding_coverage(
    calibration: Calibration, targets: np.ndarray, probs: np.ndarray, seed: int, n_bootstrap: int
) -> dict[str, Any]:
    """Each finding's coverage (its set holds its true state) and mean set size, with bootstrap intervals, the share
    of findings called certainly present, and the means over the findings."""
    sets = prediction_sets(calibration, probs)
    truth = (np.asarray(targets) > 0.5).astype(int)
    hit = np.take_along_axis(sets, truth[:, :, None], axis=2)[:, :, 0].astype(float)
    size = sets.sum(axis=2).astype(float)

    def statistics(w: np.ndarray) -> dict[str, np.ndarray]:
        covered, sized = w @ hit / w.sum(axis=1, keepdims=True), w @ size / w.sum(axis=1, keepdims=True)
        return {"coverage": covered.mean(axis=1), "mean_set_size": sized.mean(axis=1), "class_coverage": covered,
                "class_mean_set_size": sized}  # fmt: skip

    names = list(calibration.classes)
    intervals, _ = compute_bootstrap_intervals(statistics, len(hit), names, ["coverage", "mean_set_size"],
                                               ["coverage", "mean_set_size"], n_bootstrap=n_bootstrap,
                                               confidence=0.95, seed=seed)  # fmt: skip
    present = sets[:, :, 1] & ~sets[:, :, 0]
    per_class = {
        name: {"coverage": float(hit[:, c].mean()), "mean_set_size": float(size[:, c].mean()),
               "certain": float(present[:, c].mean()), "prevalence": float(truth[:, c].mean()),
               "coverage_interval": intervals["per_class"][name]["coverage"]}
        for c, name in enumerate(names)
    }  # fmt: skip
    return {"name": calibration.name, "target": calibration.coverage, "per_finding": True,
            "coverage": float(hit.mean()), "mean_set_size": float(size.mean()),
            "intervals": {k: intervals[k] for k in ("coverage", "mean_set_size")}, "per_class": per_class}  # fmt: skip


def evaluated_targets(
    predictions: pd.DataFrame, classes: tuple[str, ...], multilabel: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Targets (class indices of the rows whose label is a class; multi-label: multi-hot) and probabilities of
    evaluated images, from ``predictions.csv``'s rows."""
    from medtune.data.table import split_labels

    columns = [f"prob_{c}" for c in classes]
    if multilabel:
        found = predictions["label"].map(lambda v: set(split_labels(v if isinstance(v, str) else "")))
        targets = np.array([[c in s for c in classes] for s in found], dtype=bool).reshape(len(found), len(classes))
        return targets, predictions[columns].to_numpy(dtype=float)
    index = {name: i for i, name in enumerate(classes)}
    known = predictions["label"].isin(index)
    return predictions.loc[known, "label"].map(index).to_numpy(), predictions.loc[known, columns].to_numpy(dtype=float)
