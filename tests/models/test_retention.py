"""The retention curve: a proper survival function, fitted to the hazards it saw."""

from __future__ import annotations

import numpy as np
import pytest

from trialwatch.models.exceptions import ArtifactError
from trialwatch.models.retention import (
    EDGES,
    PHASES,
    RETENTION_DAYS,
    WIDTHS,
    RetentionModel,
    fit_retention,
    log_survival_steps,
    survival_one,
)


def survival(curve, days: np.ndarray) -> np.ndarray:
    steps = log_survival_steps(curve)
    return np.array([survival_one(float(d), *steps) for d in days])


def _model(seed: int = 0) -> RetentionModel:
    rng = np.random.default_rng(seed)
    alpha = rng.normal(-2.0, 0.5, size=(len(WIDTHS), len(PHASES)))
    return RetentionModel(alpha=alpha, slopes=rng.uniform(0.0, 1.2, size=(len(WIDTHS), 4)))


@pytest.mark.parametrize("progress", [0.0, 0.4, 1.0])
def test_curves_are_survival_functions(progress):
    model = _model()
    p = np.linspace(0.001, 0.999, 50)
    phase = np.arange(50) % len(PHASES)
    curves = model.curves(p, phase, np.full(50, progress))
    assert curves.shape == (50, len(RETENTION_DAYS))
    assert np.all((curves > 0) & (curves <= 1))
    assert np.all(np.diff(curves, axis=1) <= 0)
    # more risk today -> lower retention at every horizon (slopes >= 0), same phase
    same_phase = model.curves(p, np.zeros(50, dtype=int), np.full(50, progress))
    assert np.all(np.diff(same_phase, axis=0) <= 0)


def test_curve_one_is_curves_for_one_row():
    model = _model(4)
    for p, phase, progress in ((0.01, 0, 0.0), (0.076, 1, 0.5), (0.4, 3, 1.0), (0.9, 2, 0.2)):
        many = model.curves(np.array([p]), np.array([phase]), np.array([progress]))[0]
        np.testing.assert_allclose(model.curve_one(p, phase, progress), many, rtol=1e-12)


def test_survival_interpolates_the_curve_and_continues_the_last_hazard():
    curve = _model(1).curves(np.array([0.3]), np.array([2]), np.array([0.5]))[0]
    assert survival(curve, np.array([0.0]))[0] == 1.0
    np.testing.assert_allclose(survival(curve, EDGES[1:]), curve, rtol=1e-12)
    mid = survival(curve, np.array([45.0]))[0]  # between the 30- and 60-day points
    assert curve[1] < mid < curve[0]
    last_rate = np.log(curve[-1] / curve[-2]) / WIDTHS[-1]
    beyond = survival(curve, np.array([RETENTION_DAYS[-1] + 100.0]))[0]
    np.testing.assert_allclose(beyond, curve[-1] * np.exp(100 * last_rate), rtol=1e-12)


def test_json_round_trip_and_refusal_of_other_horizons():
    model = _model(2)
    again = RetentionModel.from_json(model.to_json())
    np.testing.assert_array_equal(again.alpha, model.alpha)
    np.testing.assert_array_equal(again.slopes, model.slopes)
    other = {**model.to_json(), "retention_days": [30, 60]}
    with pytest.raises(ArtifactError, match="other horizons"):
        RetentionModel.from_json(other)


def test_an_artifact_with_one_slope_per_bucket_gives_its_own_curves():
    """retention.json before the knot: q_b = sigmoid(alpha[b, phase] + beta[b] logit p)."""
    rng = np.random.default_rng(5)
    alpha = rng.normal(-2.0, 0.5, size=(len(WIDTHS), len(PHASES)))
    beta = rng.uniform(0.3, 1.2, size=len(WIDTHS))
    old = {"retention_days": list(RETENTION_DAYS), "phases": list(PHASES),
           "alpha": alpha.tolist(), "beta": beta.tolist()}  # fmt: skip
    model = RetentionModel.from_json(old)
    p, phase = np.array([0.02, 0.3]), np.array([1, 3])
    z = np.log(p / (1 - p))
    q = 1 / (1 + np.exp(-(alpha.T[phase] + beta * z[:, None])))
    expected = np.exp(np.cumsum(np.log1p(-q), axis=1))
    np.testing.assert_allclose(model.curves(p, phase, np.array([0.1, 0.9])), expected, rtol=1e-9)


def test_fit_recovers_a_known_hazard():
    """Rows drawn from a constant daily hazard h(p): the fitted curve matches exp(-h t)."""
    rng = np.random.default_rng(3)
    n = 40_000
    p = rng.uniform(0.01, 0.5, n)
    phase = rng.integers(0, len(PHASES), n)
    daily = 0.004 * p / 0.25  # twice the risk, twice the hazard
    days_to_withdrawal = rng.exponential(1.0 / daily)
    days_to_end = np.full(n, 1_000.0)
    model = fit_retention(p, phase, rng.uniform(0, 1, n), days_to_withdrawal, days_to_end)
    assert np.all(model.slopes >= 0)
    probe = np.array([0.25, 0.25])
    fitted = model.curves(probe, np.array([0, 3]), np.array([0.2, 0.8]))
    truth = np.exp(-0.004 * np.array(RETENTION_DAYS))
    np.testing.assert_allclose(fitted[0], truth, atol=0.03)
    np.testing.assert_allclose(fitted[1], truth, atol=0.03)


def test_fit_refuses_data_without_withdrawals():
    n = 1_000
    with pytest.raises(ValueError, match="too few withdrawals"):
        fit_retention(
            np.full(n, 0.1),
            np.zeros(n, dtype=int),
            np.zeros(n),
            np.full(n, np.inf),
            np.full(n, 1_000.0),
        )
