"""``medtune calibrate RUN DATA``: a run's decisions re-fitted to data whose class mix differs from its training
data (prevalence shift), kept in the run by name (``RUN/calibrations/<name>.json``) beside the conformal sets.

- ``--unlabelled``: the class prevalence of DATA is estimated without labels by EM (Saerens, Latinne and
  Decaestecker 2002): starting from the prior the run's probabilities carry, iterate p'(y|x) ∝ p(y|x) π'_y / π_y
  and π'_y = mean over DATA of p'(y|x) until π' moves less than `TOLERANCE`. ``kind: prevalence``,
  ``source: em``; predict then gives the adjusted probabilities and the labels they decode to.
- With labels (DATA has them, or ``--labelled N`` of its images, a seeded sample): a binary run re-chooses the
  threshold on its positive (second) class probability, a multi-label run each finding's threshold, both by the
  run's own rule (``threshold=``: Youden's J by default, the rule that chose its multi-label thresholds):
  ``kind: threshold`` (Godau et al., MICCAI 2023, re-threshold under prevalence shift). A run of three or more
  classes, or grades, takes the class prevalence of the labels (add-one smoothed) as the prior:
  ``kind: prevalence``, ``source: labels``.

EM is only as good as the probabilities it reweights, and a run's are not calibrated (label smoothing, class
weights and a weighted sampler all move them). So before EM the probabilities are re-calibrated on the run's
validation split by bias-corrected temperature scaling, softmax(log p / T + b) fitted by log loss (Alexandari,
Kundaje and Shrikumar, ICML 2020, who show that EM with it is hard to beat); its per-class biases make the mean
calibrated validation probability equal the validation prevalence, which is then the prior π the ratio divides by
(the training split's prevalence is kept beside it; a stratified split makes the two agree). A multi-label run is
treated finding by finding: each finding's sigmoid is a binary classifier with its own prevalence, scaled and
re-estimated on its own (this assumes each finding's images look alike at either prevalence; findings that shift
together are not modelled jointly), and its validation threshold is kept, applied to the adjusted probability.

EM is written here (twenty lines of numpy) rather than taken from a library: QuaPy's ``EMQ.EM`` is the same loop
but brings abstention (unmaintained since 2020), xlrd, ucimlrepo and matplotlib with it, and abstention alone
predates current numpy; scipy (already a dependency) fits the scaling.

>>> probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]])  # a run's probabilities, trained at half and half
>>> estimate, iterations, converged = estimate_prior(probs, np.array([0.5, 0.5]))
>>> estimate.round(2).tolist(), converged
([0.42, 0.58], True)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medtune.errors import ConfigError

#: EM stops when no class prevalence moves more than this between two iterations.
TOLERANCE = 1e-6
#: EM gives up (and says so) after this many iterations.
MAX_ITERATIONS = 10000
#: What a shift calibration is: re-estimated prevalence, or re-chosen thresholds.
KINDS = ("prevalence", "threshold")
_TINY = 1e-12


def fit_scaling(probs: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """Bias-corrected temperature scaling fitted on labelled images: the temperature T and per-class biases b
    (b[0] = 0) of ``softmax(log p / T + b)`` that minimise the log loss.

    >>> t, b = fit_scaling(np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]), np.array([0, 0, 1, 1]))
    >>> round(float(apply_scaling(np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]), t, b)[:, 1].mean()), 3)
    0.5
    """
    from scipy.optimize import minimize

    logp = np.log(np.clip(np.asarray(probs, dtype=np.float64), _TINY, 1.0))
    n, k = logp.shape
    onehot = np.eye(k)[np.asarray(targets)]

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        t = np.exp(params[0])
        q = apply_scaling(probs, t, np.r_[0.0, params[1:]])
        residual = (q - onehot) / n
        grad = np.r_[np.sum(residual * -logp / t), residual.sum(axis=0)[1:]]
        return float(-np.log(np.clip(q[onehot > 0], _TINY, 1.0)).sum() / n), grad

    bounds = [(-4.0, 4.0)] + [(-20.0, 20.0)] * (k - 1)
    found = minimize(loss, np.zeros(k), jac=True, method="L-BFGS-B", bounds=bounds)
    return float(np.exp(found.x[0])), np.r_[0.0, found.x[1:]]


def apply_scaling(probs: np.ndarray, temperature: float, bias: np.ndarray | list[float]) -> np.ndarray:
    """``softmax(log p / temperature + bias)`` row by row."""
    scores = np.log(np.clip(np.asarray(probs, dtype=np.float64), _TINY, 1.0)) / temperature + np.asarray(bias)
    scores -= scores.max(axis=1, keepdims=True)
    out = np.exp(scores)
    return out / out.sum(axis=1, keepdims=True)


def adjust_prior(probs: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Probabilities under another class prior: p'(y|x) ∝ p(y|x) target_y / source_y (Saerens et al. 2002).

    >>> adjust_prior(np.array([[0.5, 0.5]]), np.array([0.5, 0.5]), np.array([0.9, 0.1])).round(2).tolist()
    [[0.9, 0.1]]
    """
    weighted = np.asarray(probs, dtype=np.float64) * (np.asarray(target) / np.maximum(source, _TINY))
    return weighted / np.maximum(weighted.sum(axis=1, keepdims=True), _TINY)


def estimate_prior(
    probs: np.ndarray, prior: np.ndarray, tolerance: float = TOLERANCE, max_iterations: int = MAX_ITERATIONS
) -> tuple[np.ndarray, int, bool]:
    """EM estimate of the class prevalence of unlabelled images (Saerens, Latinne and Decaestecker 2002).

    Args:
        probs: ``(N, K)`` probabilities of the images under the class prior `prior`.
        prior: the prior the probabilities carry (where EM starts).
        tolerance: stop when no prevalence moves more than this in one iteration.
        max_iterations: stop there, unconverged.

    Returns:
        The estimated prevalence ``(K,)``, the iterations used, and whether it converged.
    """
    prior = np.asarray(prior, dtype=np.float64)
    estimate = prior.copy()
    for iteration in range(1, max_iterations + 1):
        updated = adjust_prior(probs, prior, estimate).mean(axis=0)
        moved = float(np.abs(updated - estimate).max())
        estimate = updated
        if moved < tolerance:
            return estimate, iteration, True
    return estimate, max_iterations, False


def binary(p: np.ndarray) -> np.ndarray:
    """One finding's probabilities ``(N,)`` as a two-class distribution ``(N, 2)``: absent, present."""
    p = np.asarray(p, dtype=np.float64)
    return np.stack([1.0 - p, p], axis=1)


@dataclass(frozen=True)
class Shift:
    """A prevalence or threshold calibration of a run for other data.

    Attributes:
        name: its name in the run (``RUN/calibrations/<name>.json``).
        kind: ``prevalence`` (probabilities re-weighted to `estimate`) or ``threshold`` (re-chosen thresholds).
        source: ``em`` (estimated without labels) or ``labels``.
        classes: the run's classes (multi-label: findings), in output order.
        multilabel: one binary prevalence (and threshold) per finding.
        data: the data it was fitted on.
        images: how many images of it.
        training_prior: the class (finding) prevalence of the run's training split.
        prior: the prevalence the (scaled) probabilities carry: the validation split's.
        estimate: the prevalence of the data (None for ``threshold``).
        scaling: the temperature and biases of each class set (one; multi-label: one per finding).
        thresholds: ``threshold``: the decision threshold of each finding, or of a binary run's positive class.
        iterations: EM iterations (per finding for multi-label).
        converged: whether EM converged (every finding).
        notes: what was decided, in words.
        guard_flagged: the share of the data's images the run's guard flags (None: the run has no guard).
    """

    name: str
    kind: str
    source: str
    classes: tuple[str, ...]
    multilabel: bool
    data: str
    images: int
    training_prior: tuple[float, ...]
    prior: tuple[float, ...] = ()
    estimate: tuple[float, ...] | None = None
    scaling: tuple[dict[str, Any], ...] = ()
    thresholds: tuple[float, ...] | None = None
    iterations: int = 0
    converged: bool = True
    notes: tuple[str, ...] = field(default_factory=tuple)
    guard_flagged: float | None = None

    def to_dict(self) -> dict[str, Any]:
        found = asdict(self)
        return {key: list(v) if isinstance(v, tuple) else v for key, v in found.items()}

    @classmethod
    def from_dict(cls, found: Mapping[str, Any]) -> Shift:
        tuples = ("classes", "training_prior", "prior", "scaling", "notes")
        values = {k: tuple(found[k]) if k in tuples else found[k] for k in cls.__dataclass_fields__ if k in found}
        for key in ("estimate", "thresholds"):
            values[key] = None if found.get(key) is None else tuple(found[key])
        return cls(**values)

    def probabilities(self, probs: np.ndarray) -> np.ndarray:
        """The probabilities this calibration gives for the run's `probs` ``(N, K)``: scaled and re-weighted to the
        estimated prevalence (``prevalence``), or unchanged (``threshold``)."""
        if self.kind == "threshold" or self.estimate is None:
            return np.asarray(probs, dtype=np.float64)
        if not self.multilabel:
            scaled = apply_scaling(probs, self.scaling[0]["temperature"], self.scaling[0]["bias"])
            return adjust_prior(scaled, np.asarray(self.prior), np.asarray(self.estimate))
        out = np.empty(np.shape(probs), dtype=np.float64)
        for c, scale in enumerate(self.scaling):
            scaled = apply_scaling(binary(probs[:, c]), scale["temperature"], scale["bias"])
            pair = np.array([1 - self.prior[c], self.prior[c]]), np.array([1 - self.estimate[c], self.estimate[c]])
            out[:, c] = adjust_prior(scaled, *pair)[:, 1]
        return out

    def decide(self, probs: np.ndarray, decode: Any, run_thresholds: tuple[float, ...] | None) -> np.ndarray:
        """The decisions for the run's `probs`: class indices ``(N,)`` (`decode` of the task for ``prevalence``;
        the positive class where its probability reaches the threshold for ``threshold``), or multi-label flags
        ``(N, C)`` at the calibration's thresholds (``prevalence``: the run's, on the adjusted probabilities)."""
        from medtune.metrics.per_label import DEFAULT_THRESHOLD, predict_labels

        adjusted = self.probabilities(probs)
        if self.multilabel:
            thresholds = self.thresholds or run_thresholds or (DEFAULT_THRESHOLD,) * len(self.classes)
            return predict_labels(adjusted, thresholds)
        if self.kind == "threshold":
            return predict_labels(adjusted[:, 1:2], self.thresholds)[:, 0].astype(np.int64)
        return decode(adjusted)


def check_name(name: str) -> str:
    """`name` when it can name ``RUN/calibrations/NAME.json``.

    Raises:
        ConfigError: anything but letters, digits, ``-`` and ``_``.
    """
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"--name {name!r}: use letters, digits, - and _ (it names RUN/calibrations/NAME.json)")
    return name


def calibration_home(run: str | os.PathLike) -> Path:
    """The run directory that keeps `run`'s calibrations (an exported ``RUN/export/model.onnx`` is in its run)."""
    path = Path(run)
    return path.parent.parent if path.suffix.lower() == ".onnx" else path
