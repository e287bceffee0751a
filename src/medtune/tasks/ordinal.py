"""Ordinal grades (``task=ordinal``): classes that come in order, such as diabetic-retinopathy grades 0-4,
Kellgren-Lawrence grades or tumour grades. The network has K-1 outputs trained with the CORN loss of
``coral-pytorch`` (Shi, Cao and Raschka, "Deep neural networks for rank-consistent ordinal regression based on
conditional probabilities", 2023): output k is the logit of P(grade > k | grade > k-1), so the grade
probabilities P(grade > k) are their running product and can never contradict each other (rank consistency).

The K class probabilities follow from them, so AUC, calibration and every file look as for any classifier; the
predicted grade is the median of that distribution (the number of k with P(grade > k) > 0.5, CORN's own rule),
and ``metrics.json`` adds what graded labels need (``ordinal``): the quadratic weighted kappa and the mean
absolute grade error, with bootstrap intervals; accuracy, the confusion matrix and F1 count the median grades.

The grades are the classes in the table's order (sorted names, or an ``.npz`` file's label numbers): name them so
that they sort in grade order (``0``...``4``, ``KL0``...``KL4``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from medtune.errors import ConfigError, DataError, MissingDependencyError
from medtune.metrics.bootstrap import compute_bootstrap_intervals
from medtune.models.inference import ACTIVATIONS, Activation
from medtune.tasks.base import TASKS, Task
from medtune.tasks.classify import Classify

if TYPE_CHECKING:
    from medtune.config import Config
    from medtune.data.table import Table

#: The share of the predicted grade distribution a grade's cumulative probability must pass to be exceeded.
MEDIAN = 0.5
_TINY = 1e-12


def corn_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Grade probabilities ``(B, K)`` from CORN logits ``(B, K-1)``: P(grade > k) is the running product of the
    conditional sigmoids, and P(grade = k) = P(grade > k-1) - P(grade > k).

    >>> corn_probabilities(torch.zeros(1, 2)).tolist()
    [[0.5, 0.25, 0.25]]
    """
    above = torch.cumsum(nn.functional.logsigmoid(logits), dim=1).exp()  # a running product; ONNX has CumSum
    ones, zeros = torch.ones_like(above[:, :1]), torch.zeros_like(above[:, :1])
    return (torch.cat([ones, above], dim=1) - torch.cat([above, zeros], dim=1)).clamp_min(0.0)


def corn_logits(log_probs: torch.Tensor) -> torch.Tensor:
    """CORN logits whose grade probabilities are ``exp(log_probs)`` (the inverse of `corn_probabilities`), so an
    ensemble of ordinal runs answers in its members' own outputs."""
    probs = log_probs.exp()
    above = probs.flip(1).cumsum(1).flip(1)[:, 1:]  # P(grade > k), k = 0..K-2
    before = torch.cat([torch.ones_like(above[:, :1]), above[:, :-1]], dim=1)
    conditional = (above / before.clamp_min(_TINY)).clamp(1e-7, 1 - 1e-7)
    return torch.log(conditional) - torch.log1p(-conditional)


ACTIVATIONS.register("corn")(
    Activation(corn_probabilities, lambda z: corn_probabilities(z).clamp_min(_TINY).log(), corn_logits)
)


class CornLoss(nn.Module):
    """The CORN loss of ``coral-pytorch`` over `num_classes` ordered grades (logits ``(B, K-1)``, grades ``(B,)``)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        try:
            from coral_pytorch.losses import corn_loss
        except ImportError as exc:  # pragma: no cover - a dependency of medtune
            raise MissingDependencyError("task=ordinal needs coral-pytorch: pip install coral-pytorch") from exc
        self.num_classes = num_classes
        self._corn_loss = corn_loss

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self._corn_loss(logits.float(), targets, self.num_classes)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}"


def median_grades(probs: np.ndarray) -> np.ndarray:
    """The median grade of each row of grade probabilities: how many cumulative probabilities P(grade > k) pass
    one half (CORN's rule, the same grade the network's own outputs give).

    >>> median_grades(np.array([[0.1, 0.3, 0.6], [0.6, 0.3, 0.1]])).tolist()
    [2, 0]
    """
    above = 1.0 - np.cumsum(probs, axis=1)[:, :-1]
    return (above > MEDIAN).sum(axis=1)


def _weighted_agreement(weights: np.ndarray, truth: np.ndarray, guess: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Quadratic weighted kappa and mean absolute grade error for each row of resample `weights`."""
    onehot_t, onehot_p = np.eye(k)[truth], np.eye(k)[guess]
    observed = np.einsum("bn,ni,nj->bij", weights, onehot_t, onehot_p)
    total = observed.sum(axis=(1, 2))
    expected = np.einsum("bi,bj->bij", observed.sum(axis=2), observed.sum(axis=1)) / total[:, None, None]
    grades = np.arange(k)
    penalty = (grades[:, None] - grades[None, :]) ** 2 / max(1, (k - 1) ** 2)
    disagreement = (penalty * expected).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        kappa = np.where(disagreement > 0, 1.0 - (penalty * observed).sum(axis=(1, 2)) / disagreement, np.nan)
    return {"quadratic_kappa": kappa, "mean_absolute_error": weights @ np.abs(truth - guess) / total}


def grade_metrics(
    targets: np.ndarray, probs: np.ndarray, n_bootstrap: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict[str, Any]:
    """The quadratic weighted kappa (Cohen's kappa with squared grade distances; 1 is perfect agreement, 0 is
    chance) and the mean absolute grade error of the median grades, each with a percentile bootstrap interval over
    the images.

    >>> found = grade_metrics(np.array([0, 1, 2, 2]), np.eye(3)[[0, 1, 2, 1]], n_bootstrap=0)
    >>> round(found["quadratic_kappa"], 3), found["mean_absolute_error"]
    (0.8, 0.25)
    """
    k = probs.shape[1]
    truth, guess = np.asarray(targets, dtype=np.int64), median_grades(probs)
    point = {name: float(v[0]) for name, v in _weighted_agreement(np.ones((1, len(truth))), truth, guess, k).items()}
    intervals, _ = compute_bootstrap_intervals(
        lambda w: _weighted_agreement(w, truth, guess, k), len(truth), [], list(point), [],
        n_bootstrap=n_bootstrap, confidence=confidence, seed=seed, cells_per_image=k * k,
    )  # fmt: skip
    intervals.pop("per_class")
    return {**point, "intervals": intervals}


@TASKS.register("ordinal")
class Ordinal(Classify):
    """Grades in order: CORN outputs, grade probabilities, the median grade, kappa and grade error."""

    name = "ordinal"
    activation = "corn"
    output = "probabilities of ordered grades (CORN: rank-consistent)"

    def num_outputs(self, num_classes: int) -> int:
        return num_classes - 1

    def for_multilabel_table(self, table: Table) -> Task:
        raise ConfigError(
            f"task=ordinal needs one grade per image, but {table.source} has several labels per image; "
            "give label=COLUMN with the grade, or leave task= out for multi-label findings"
        )

    def checkpoint_meta(self, table: Table) -> dict[str, Any]:
        return {"classes": list(table.classes), "multilabel": False, "task": self.name}

    def check_trainable(self, table: Table) -> Table:
        super().check_trainable(table)
        if len(table.classes) < 3:
            raise DataError(
                f"{table.source} has {len(table.classes)} grades ({', '.join(table.classes)}); ordinal grading "
                "needs at least three in order: with two, leave task= out"
            )
        return table

    def loss_weights(self, config: Config, table: Table, rows: np.ndarray) -> torch.Tensor | None:
        if config.class_weights != "none":
            raise ConfigError(
                f"class_weights={config.class_weights} does not apply to task=ordinal (the CORN loss weighs "
                "each grade threshold by the images above it); use sampler=weighted to draw rare grades more often"
            )
        return None

    def loss(self, config: Config, weights: torch.Tensor | None, num_classes: int) -> nn.Module:
        if config.loss != "cross-entropy":
            raise ConfigError(f"task=ordinal trains with the CORN loss; leave loss= out (got loss={config.loss})")
        return CornLoss(num_classes)

    def more_headline(self, metrics: dict[str, Any]) -> list[tuple[str, Any, Any]]:
        graded = metrics.get("ordinal", {})
        intervals = graded.get("intervals", {})
        return [
            (name, graded.get(key), intervals.get(key))
            for name, key in (
                ("quadratic weighted kappa", "quadratic_kappa"),
                ("mean absolute grade error", "mean_absolute_error"),
            )
        ]

    def decode(self, probs: np.ndarray) -> np.ndarray:
        """The median grade of each image."""
        return median_grades(probs)

    def more_metrics(
        self, targets: np.ndarray, probs: np.ndarray, classes: tuple[str, ...], config: Config
    ) -> dict[str, Any]:
        """``ordinal``: the quadratic weighted kappa and mean absolute grade error, with their intervals."""
        return {"task": self.name, "ordinal": grade_metrics(targets, probs, seed=config.seed)}
