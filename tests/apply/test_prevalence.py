"""medtune.apply.prevalence: EM prior estimation, bias-corrected temperature scaling and the `Shift` calibration,
checked exactly on probabilities drawn from a known model."""

from __future__ import annotations

import numpy as np
import pytest

from medtune.apply.prevalence import (
    Shift,
    adjust_prior,
    apply_scaling,
    binary,
    calibration_home,
    check_name,
    estimate_prior,
    fit_scaling,
)
from medtune.errors import ConfigError

MEANS = np.array([-1.0, 0.0, 1.5])


def posteriors(x: np.ndarray, prior: np.ndarray, means: np.ndarray = MEANS) -> np.ndarray:
    """The exact p(y|x) of a Gaussian model x | y ~ N(means[y], 1) under `prior`."""
    likelihood = np.exp(-0.5 * (x[:, None] - means[: len(prior)]) ** 2) * prior
    return likelihood / likelihood.sum(axis=1, keepdims=True)


def draw(prior: np.ndarray, n: int, seed: int, means: np.ndarray = MEANS) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.choice(len(prior), n, p=prior)
    return rng.normal(means[y], 1.0), y


def test_em_recovers_a_shifted_prior_from_exact_posteriors():
    source, target = np.array([0.2, 0.3, 0.5]), np.array([0.6, 0.3, 0.1])
    x, y = draw(target, 40000, seed=1)
    estimate, iterations, converged = estimate_prior(posteriors(x, source), source)
    truth = np.bincount(y, minlength=3) / len(y)
    assert converged and 1 < iterations < 1000
    np.testing.assert_allclose(estimate, truth, atol=0.01)  # the sampling error of 40000 draws is about 0.003
    np.testing.assert_allclose(estimate.sum(), 1.0)
    x, y = draw(source, 40000, seed=2)
    same, _, _ = estimate_prior(posteriors(x, source), source)
    np.testing.assert_allclose(same, np.bincount(y, minlength=3) / len(y), atol=0.02)  # no shift: it stays


def test_adjusting_to_the_true_prior_gives_the_true_posteriors():
    source, target = np.array([0.5, 0.5]), np.array([0.9, 0.1])
    x = np.linspace(-3, 3, 7)
    np.testing.assert_allclose(adjust_prior(posteriors(x, source), source, target), posteriors(x, target))


def test_scaling_undoes_label_smoothing_so_em_is_not_biased():
    """Label smoothing (0.1, medtune's default) squeezes probabilities toward one half; EM on them overshoots, EM
    after the validation-fitted scaling does not."""
    source, target = np.array([0.3, 0.7]), np.array([0.8, 0.2])
    xv, yv = draw(source, 5000, seed=3)
    smooth = 0.9 * posteriors(xv, source) + 0.05
    temperature, bias = fit_scaling(smooth, yv)
    assert temperature < 0.9 and bias[0] == 0
    scaled_val = apply_scaling(smooth, temperature, bias)
    np.testing.assert_allclose(scaled_val.mean(axis=0), np.bincount(yv) / len(yv), atol=1e-4)  # the biases' work
    x, y = draw(target, 20000, seed=4)
    data = 0.9 * posteriors(x, source) + 0.05
    raw, _, _ = estimate_prior(data, source)
    scaled, _, _ = estimate_prior(apply_scaling(data, temperature, bias), scaled_val.mean(axis=0))
    truth = np.bincount(y) / len(y)
    assert abs(raw[0] - truth[0]) > 0.08  # unscaled: about 0.93 for 0.80
    assert abs(scaled[0] - truth[0]) < 0.02


def test_a_shift_calibration_decides_and_round_trips():
    scaling = ({"temperature": 1.0, "bias": [0.0, 0.0]},)
    shift = Shift("site", "prevalence", "em", ("normal", "pneumonia"), False, "/data", 10, (0.26, 0.74),
                  prior=(0.5, 0.5), estimate=(0.9, 0.1), scaling=scaling)  # fmt: skip
    probs = np.array([[0.4, 0.6], [0.05, 0.95]])
    np.testing.assert_allclose(shift.probabilities(probs)[0], [6 / 7, 1 / 7])
    assert shift.decide(probs, lambda p: p.argmax(axis=1), None).tolist() == [0, 1]
    assert Shift.from_dict(shift.to_dict()) == shift
    threshold = Shift("t", "threshold", "labels", ("normal", "pneumonia"), False, "/d", 4, (0.3, 0.7),
                      thresholds=(0.97,))  # fmt: skip
    assert threshold.decide(probs, None, None).tolist() == [0, 0]
    np.testing.assert_array_equal(threshold.probabilities(probs), probs)
    findings = Shift("f", "prevalence", "em", ("a", "b"), True, "/d", 4, (0.1, 0.5), prior=(0.1, 0.5),
                     estimate=(0.1, 0.05), scaling=({"temperature": 1.0, "bias": [0.0, 0.0]},) * 2)  # fmt: skip
    flags = findings.decide(np.array([[0.6, 0.6]]), None, (0.5, 0.5))
    assert flags.tolist() == [[True, False]]  # b is ten times rarer here: 0.6 falls to 0.136 < 0.5
    np.testing.assert_allclose(binary(np.array([0.25])), [[0.75, 0.25]])


def test_names_and_where_calibrations_live(tmp_path):
    assert check_name("site-b_2") == "site-b_2"
    with pytest.raises(ConfigError, match="letters, digits"):
        check_name("../x")
    assert calibration_home(tmp_path / "run" / "export" / "model.onnx") == tmp_path / "run"
    assert calibration_home(tmp_path / "run") == tmp_path / "run"
