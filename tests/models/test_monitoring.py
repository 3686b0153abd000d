"""Realized-accuracy arithmetic (models.monitoring) against sklearn, and its window."""

from __future__ import annotations

import random

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from trialwatch.models.metrics import calibration_slope
from trialwatch.models.monitoring import WEEK_MS, OutcomeWindow, evaluate_outcomes, metrics_of
from trialwatch.models.outcomes import MaturedOutcome


def outcomes_factory(n: int, seed: int = 1, shift: float = 0.0) -> list[MaturedOutcome]:
    """Predictions over ten weeks whose true rate is p (logit-shifted by ``shift``)."""
    rng = np.random.default_rng(seed)
    p = 1 / (1 + np.exp(-rng.normal(-2.5, 1.2, n)))
    truth = 1 / (1 + np.exp(-(np.log(p / (1 - p)) + shift)))
    y = (rng.uniform(size=n) < truth).astype(int)
    tiers = np.searchsorted([0.03, 0.1, 0.27], p, side="right")
    at = rng.integers(0, 10 * WEEK_MS, n)
    return [
        MaturedOutcome("v1", int(t), float(q), int(k), int(label))
        for t, q, k, label in zip(at, p, tiers, y, strict=True)
    ]


def _arrays(outcomes: list[MaturedOutcome]) -> tuple[np.ndarray, np.ndarray]:
    return (
        np.array([o.label for o in outcomes]),
        np.array([o.probability for o in outcomes]),
    )


def test_metrics_from_counts_match_the_exact_ones() -> None:
    outcomes = outcomes_factory(20_000)
    window = OutcomeWindow("v1", "T1")
    for outcome in outcomes:
        assert window.add(outcome)
    m = window.metrics()
    y, p = _arrays(outcomes)
    assert m["n"] == len(outcomes) and m["positives"] == int(y.sum())
    assert m["brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=0.003)
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, p), abs=0.01)
    assert m["calibration_slope"] == pytest.approx(calibration_slope(y, p), abs=0.05)
    assert m["calibration_in_the_large"] == pytest.approx(p.mean() / y.mean(), rel=1e-12)
    high = p >= 0.1
    assert m["tiers"]["HIGH"]["recall"] == pytest.approx((high & (y == 1)).sum() / y.sum())
    assert m["tiers"]["HIGH"]["precision"] == pytest.approx(y[high].mean())


def test_calibration_reports_an_under_predicting_model() -> None:
    shifted = OutcomeWindow("v1", "T1")
    for outcome in outcomes_factory(20_000, shift=1.0):  # true odds e times the predicted
        shifted.add(outcome)
    calibrated = OutcomeWindow("v1", "T1")
    for outcome in outcomes_factory(20_000, shift=0.0):
        calibrated.add(outcome)
    assert shifted.metrics()["calibration_in_the_large"] < 0.6
    assert calibrated.metrics()["calibration_in_the_large"] == pytest.approx(1.0, abs=0.06)


def test_the_window_keeps_the_newest_weeks_for_any_arrival_order() -> None:
    outcomes = outcomes_factory(3_000)
    late = [
        MaturedOutcome("v1", o.predicted_at + 8 * WEEK_MS, o.probability, o.tier_rank, o.label)
        for o in outcomes[:500]
    ]
    everything = outcomes + late
    forward = OutcomeWindow("v1", "T1", window_weeks=13)
    for outcome in everything:
        forward.add(outcome)
    shuffled = OutcomeWindow("v1", "T1", window_weeks=13)
    order = everything[:]
    random.Random(3).shuffle(order)
    for outcome in order:
        shuffled.add(outcome)
    newest = max(o.predicted_at for o in everything) // WEEK_MS
    kept = [o for o in everything if o.predicted_at // WEEK_MS > newest - 13]
    assert 500 < len(kept) < len(everything)
    assert sorted(forward.weeks) == sorted(shuffled.weeks)
    assert len(forward.weeks) <= 13
    for m in (forward.metrics(), shuffled.metrics()):
        assert m["n"] == len(kept)
        assert m["positives"] == sum(o.label for o in kept)
    assert forward.metrics()["brier"] == pytest.approx(shuffled.metrics()["brier"], rel=1e-12)


def test_a_window_survives_its_record_form() -> None:
    window = OutcomeWindow("v1", "T1")
    for outcome in outcomes_factory(500):
        window.add(outcome)
    again = OutcomeWindow.from_record(window.to_record())
    assert again == window
    assert again.metrics() == window.metrics()


def test_empty_and_one_class_windows_say_unknown_not_zero() -> None:
    assert metrics_of(OutcomeWindow("v", "T").merged())["roc_auc"] is None
    window = OutcomeWindow("v", "T")
    window.add(MaturedOutcome("v", 0, 0.2, 2, 0))
    m = window.metrics()
    assert m["n"] == 1 and m["roc_auc"] is None and m["calibration_in_the_large"] is None
    assert m["brier"] == pytest.approx(0.04)


def test_evaluate_outcomes_splits_by_version_and_trial() -> None:
    a = MaturedOutcome("v1", 0, 0.2, 2, 1)
    b = MaturedOutcome("v2", 0, 0.3, 2, 0)
    windows = evaluate_outcomes([("T1", a), ("T1", b), ("T2", a)])
    assert {k: w.metrics()["n"] for k, w in windows.items()} == {
        ("v1", "T1"): 1,
        ("v2", "T1"): 1,
        ("v1", "T2"): 1,
    }
