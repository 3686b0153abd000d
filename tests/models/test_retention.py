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
    return RetentionModel(alpha=alpha, beta=rng.uniform(0.3, 1.2, size=len(WIDTHS)))


def test_curves_are_survival_functions():
    model = _model()
    p = np.linspace(0.001, 0.999, 50)
    phase = np.arange(50) % len(PHASES)
    curves = model.curves(p, phase)
    assert curves.shape == (50, len(RETENTION_DAYS))
    assert np.all((curves > 0) & (curves <= 1))
    assert np.all(np.diff(curves, axis=1) <= 0)
    # more risk today -> lower retention at every horizon (beta > 0), same phase
    same_phase = model.curves(p, np.zeros(50, dtype=int))
    assert np.all(np.diff(same_phase, axis=0) <= 0)


def test_survival_interpolates_the_curve_and_continues_the_last_hazard():
    curve = _model(1).curves(np.array([0.3]), np.array([2]))[0]
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
    np.testing.assert_array_equal(again.beta, model.beta)
    other = {**model.to_json(), "retention_days": [30, 60]}
    with pytest.raises(ArtifactError, match="other horizons"):
        RetentionModel.from_json(other)


def test_fit_recovers_a_known_hazard():
    """Rows drawn from a constant daily hazard h(p): the fitted curve matches exp(-h t)."""
    rng = np.random.default_rng(3)
    n = 40_000
    p = rng.uniform(0.01, 0.5, n)
    phase = rng.integers(0, len(PHASES), n)
    daily = 0.004 * p / 0.25  # twice the risk, twice the hazard
    days_to_withdrawal = rng.exponential(1.0 / daily)
    days_to_end = np.full(n, 1_000.0)
    model = fit_retention(p, phase, days_to_withdrawal, days_to_end)
    probe = np.array([0.25, 0.25])
    fitted = model.curves(probe, np.array([0, 3]))
    truth = np.exp(-0.004 * np.array(RETENTION_DAYS))
    np.testing.assert_allclose(fitted[0], truth, atol=0.03)
    np.testing.assert_allclose(fitted[1], truth, atol=0.03)


def test_fit_refuses_data_without_withdrawals():
    n = 1_000
    with pytest.raises(ValueError, match="too few withdrawals"):
        fit_retention(
            np.full(n, 0.1), np.zeros(n, dtype=int), np.full(n, np.inf), np.full(n, 1_000.0)
        )
