"""Percentile bootstrap intervals, vectorised over blocks of resamples.

A resample of the N images is stored as a vector of draw counts per image (how often each image was drawn), so a
block of B resamples is a (B, N) weight matrix, and a metric is computed for the whole block with a few array
operations (a matrix product for counts, a weighted Mann-Whitney statistic for AUCs) instead of once per resample.
`medtune.metrics.classification` and `medtune.metrics.per_label` both draw their intervals here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from medtune.errors import ConfigError

# Largest number of (resample, image) cells held in memory at once during the bootstrap.
_BLOCK_CELLS = 2_000_000


def check_bootstrap_options(n_bootstrap: int, confidence: float) -> None:
    """Refuse a number of resamples that is not an integer >= 0, or a coverage outside (0, 1).

    Args:
        n_bootstrap: number of bootstrap resamples (0 skips the intervals).
        confidence: coverage of the intervals.

    Raises:
        ConfigError: `n_bootstrap` or `confidence` is out of range (`n_bootstrap` is checked first).

    >>> check_bootstrap_options(1000, 0.95)
    """
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int | np.integer) or n_bootstrap < 0:
        raise ConfigError(f"n_bootstrap must be an integer >= 0 (0 skips the intervals), got {n_bootstrap!r}")
    if isinstance(confidence, bool) or not isinstance(confidence, int | float | np.number) or not 0 < confidence < 1:
        raise ConfigError(f"confidence must be between 0 and 1 exclusive, e.g. 0.95, got {confidence!r}")


def compute_bootstrap_intervals(
    statistics: Callable[[np.ndarray], dict[str, np.ndarray]],
    n: int,
    classes: Sequence[str],
    metrics: Sequence[str],
    class_metrics: Sequence[str],
    *,
    n_bootstrap: int,
    confidence: float,
    seed: int,
    cells_per_image: int = 1,
) -> tuple[dict, dict[str, np.ndarray]]:
    """Percentile bootstrap intervals of whole-sample and per-class metrics.

    ``n_bootstrap`` resamples of the `n` images are drawn with replacement from ``np.random.default_rng(seed)``,
    in blocks that keep about two million (resample, image) cells in memory; each block is cut again so that a
    block times `cells_per_image` stays within that bound. The same arguments always give the same intervals.
    A resample where a metric is NaN (undefined) is skipped for that metric only; an interval is ``[nan, nan]``
    when no resample defines it.

    Args:
        statistics: called with a block of resample weights ``(B, n)`` (``weights[b, i]``: how often image i is
            drawn in resample b); returns each name of `metrics` mapped to ``(B,)`` values and each
            ``"class_" + name`` of `class_metrics` mapped to ``(B, len(classes))`` values.
        n: number of images.
        classes: the class (or label) names, in column order of the per-class values.
        metrics: names of the whole-sample metrics, in the order the intervals list them.
        class_metrics: names of the per-class metrics.
        n_bootstrap: number of resamples; 0 gives ``[nan, nan]`` everywhere.
        confidence: coverage of the intervals, in (0, 1).
        seed: seed of the random generator.
        cells_per_image: array cells `statistics` holds per (resample, image), to size the blocks.

    Returns:
        The intervals, ``{metric: [lo, hi], ..., "per_class": {name: {metric: [lo, hi]}}}``, and every resample's
        values by the keys of `statistics` (``(n_bootstrap,)`` or ``(n_bootstrap, len(classes))`` arrays, NaN
        where undefined), for warnings about metrics undefined in some resamples.

    >>> scores = np.array([1.0, 2.0, 3.0, 4.0])
    >>> def mean(weights):
    ...     return {"mean": weights @ scores / weights.sum(axis=1)}
    >>> intervals, samples = compute_bootstrap_intervals(mean, 4, [], ["mean"], [], n_bootstrap=200, confidence=0.9,
    ...                                                  seed=0)
    >>> samples["mean"].shape, 1.0 <= intervals["mean"][0] < 2.5 < intervals["mean"][1] <= 4.0, intervals["per_class"]
    ((200,), True, {})
    """
    k = len(classes)
    keys = [*metrics, *(f"class_{metric}" for metric in class_metrics)]
    parts: dict[str, list[np.ndarray]] = {key: [] for key in keys}
    block = max(1, _BLOCK_CELLS // (n * cells_per_image))
    for drawn in _iter_bootstrap_weights(n, n_bootstrap, seed):
        for weights in np.array_split(drawn, -(-len(drawn) // block)):
            values = statistics(weights)
            for key in keys:
                parts[key].append(values[key])
    samples = {
        key: np.concatenate(parts[key]) if parts[key] else np.empty((0, k) if key.startswith("class_") else 0)
        for key in keys
    }
    intervals: dict = {metric: _percentile_interval(samples[metric], confidence) for metric in metrics}
    intervals["per_class"] = {
        name: {metric: _percentile_interval(samples[f"class_{metric}"][:, c], confidence) for metric in class_metrics}
        for c, name in enumerate(classes)
    }
    return intervals, samples


def _iter_bootstrap_weights(n: int, n_bootstrap: int, seed: int) -> Iterator[np.ndarray]:
    """Yield blocks of resample weights (B_block, N): how often each image is drawn in each resample."""
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_CELLS // n)
    for start in range(0, n_bootstrap, block):
        size = min(block, n_bootstrap - start)
        draws = rng.integers(0, n, size=(size, n))
        flat = (draws + (np.arange(size) * n)[:, None]).ravel()
        yield np.bincount(flat, minlength=size * n).reshape(size, n).astype(np.float64)


def _percentile_interval(values: np.ndarray, confidence: float) -> list[float]:
    """``[lo, hi]`` percentile interval of the defined (non-NaN) values, ``[nan, nan]`` when there are none."""
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return [math.nan, math.nan]
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return [float(lo), float(hi)]
