"""Per-trial recalibration arithmetic and its guardrails (models.recalibration)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trialwatch.models.monitoring import WEEK_MS, OutcomeWindow
from trialwatch.models.outcomes import MaturedOutcome
from trialwatch.models.recalibration import (
    Calibration,
    RecalibrationPolicy,
    mature_weeks,
    next_version,
    propose,
    served_version,
)
from trialwatch.models.tiers import Tiers

HORIZON = 60


def window_of(
    n: int, a: float, b: float, weeks: int = 26, seed: int = 3, version: str = "v1"
) -> OutcomeWindow:
    """Outcomes whose true log-odds are a + b * logit(served p), spread over ``weeks``."""
    rng = np.random.default_rng(seed)
    p = 1 / (1 + np.exp(-rng.normal(-2.5, 1.0, n)))
    z = np.log(p / (1 - p))
    y = rng.uniform(size=n) < 1 / (1 + np.exp(-(a + b * z)))
    at = np.sort(rng.integers(0, weeks * WEEK_MS, n))
    window = OutcomeWindow(version, "T1", window_weeks=weeks)
    for t, q, label in zip(at, p, y, strict=True):
        window.add(MaturedOutcome(version, int(t), float(q), 1, int(label)))
    return window


def test_a_shifted_trial_gets_the_map_that_generated_its_outcomes():
    proposal = propose(window_of(60_000, a=0.8, b=1.0), "v1", None, HORIZON)
    cal = proposal.calibration
    assert cal is not None, proposal.reason
    assert cal.a == pytest.approx(0.8, abs=0.1) and cal.b == pytest.approx(1.0, abs=0.08)
    assert proposal.report["before"]["calibration_in_the_large"] < 0.6
    assert proposal.report["after"]["calibration_in_the_large"] == pytest.approx(1.0, abs=0.02)
    held_out = proposal.report["held_out"]
    assert held_out["brier_after"] < held_out["brier_before"]
    assert cal.version == "T1.r1" and cal.model_version == "v1"


def test_only_weeks_older_than_the_horizon_are_fitted():
    window = window_of(5_000, a=0.0, b=1.0, weeks=26)
    mature = mature_weeks(window, HORIZON)
    newest = window.newest_week
    assert len(mature) == len([w for w in window.weeks if (w + 1) * 7 + HORIZON <= newest * 7])
    assert 0 < len(mature) < len(window.weeks)
    assert mature_weeks(OutcomeWindow("v1", "T1"), HORIZON) == []


def test_guardrails_decline_what_the_counts_cannot_support():
    few = propose(window_of(300, a=1.0, b=1.0), "v1", None, HORIZON)
    assert few.calibration is None and few.reason == "too few matured outcomes"
    calibrated = propose(window_of(40_000, a=0.0, b=1.0), "v1", None, HORIZON)
    assert calibrated.calibration is None and calibrated.reason.startswith("calibrated within")


def test_the_held_out_check_refuses_a_map_the_newer_weeks_contradict():
    """Older weeks under-predicted, newer weeks over-predicted: the fit on the
    older part makes the newest third worse, so it is declined."""
    old = window_of(40_000, a=1.0, b=1.0, weeks=26, seed=1)
    new = window_of(40_000, a=-1.2, b=1.0, weeks=26, seed=2)
    window = OutcomeWindow("v1", "T1", window_weeks=26)
    for source, keep in ((old, lambda w: w < 8), (new, lambda w: w >= 8)):
        for week, counts in source.weeks.items():
            if keep(week):
                window.weeks[week] = counts
    window.newest_week = max(window.weeks)
    proposal = propose(window, "v1", None, HORIZON)
    assert proposal.calibration is None
    assert proposal.reason == "the held-out Brier score does not improve"


def test_a_large_shift_is_bounded_and_says_so():
    policy = RecalibrationPolicy(max_shift=0.5)
    proposal = propose(window_of(40_000, a=1.5, b=1.0), "v1", None, HORIZON, policy)
    assert proposal.calibration is not None
    assert proposal.calibration.a == pytest.approx(0.5)
    assert proposal.report["clipped"] is True


def test_a_refit_composes_with_the_map_in_place():
    """Served through r1, the trial is still off: r2 is one map on the model's log-odds."""
    tiers = Tiers({"MEDIUM": 0.03, "HIGH": 0.1, "CRITICAL": 0.25}, {}, {})
    r1 = Calibration("v1", "T1", "T1.r1", a=0.4, b=0.9, tiers=tiers)
    proposal = propose(window_of(60_000, a=0.5, b=1.0, version="v1+T1.r1"), "v1", r1, HORIZON)
    r2 = proposal.calibration
    assert r2 is not None and r2.version == "T1.r2"
    step = proposal.report["step"]
    p = np.array([0.01, 0.05, 0.2, 0.6])
    through_both = 1 / (
        1 + np.exp(-(step["a"] + step["b"] * np.log(r1.apply(p) / (1 - r1.apply(p)))))
    )
    assert r2.apply(p) == pytest.approx(through_both, rel=1e-12)


def test_the_map_is_strictly_increasing_so_ranks_stay():
    tiers = Tiers({"MEDIUM": 0.03, "HIGH": 0.1, "CRITICAL": 0.25}, {}, {})
    cal = Calibration("v1", "T1", "T1.r1", a=0.7, b=0.6, tiers=tiers)
    p = np.linspace(0.001, 0.999, 500)
    assert np.all(np.diff(cal.apply(p)) > 0)
    assert cal.apply_one(0.2) == pytest.approx(float(cal.apply(np.array([0.2]))[0]), rel=1e-15)
    again = Calibration.from_json(cal.to_json())
    assert again == cal and again.tiers == cal.tiers


def test_names_of_versions():
    assert served_version("v1", None) == "v1"
    tiers = Tiers({"MEDIUM": 0.03, "HIGH": 0.1, "CRITICAL": 0.25}, {}, {})
    r3 = Calibration("v1", "T-9", "T-9.r3", 0.0, 1.0, tiers)
    assert served_version("v1", r3) == "v1+T-9.r3"
    assert next_version("T-9", None) == "T-9.r1" and next_version("T-9", r3) == "T-9.r4"
    assert math.isfinite(r3.apply_one(0.0)) and math.isfinite(r3.apply_one(1.0))
