"""Participant value: CLV from a retention curve S(t), and value at risk.

The retention curve comes from ``models.retention`` (a discrete-time hazard on
the churn score, piecewise exponential between RETENTION_DAYS).

CLV at time t0 = sum over remaining scheduled visits k of
    visit_value * S(t_k) * attend * discount(t_k)
  + completion_value * S(t_end) * discount(t_end)
where ``attend`` is the participant's attendance rate shrunk to the training
population's. ``value_at_risk`` = the same with S = 1, minus CLV. Plain floats:
this runs once per scored event over a dozen or so visits, where numpy's
per-call overhead would cost more than the arithmetic.
"""

from __future__ import annotations

import math

from trialwatch.models.economics import PHASE_ECONOMICS, discount_per_day
from trialwatch.models.retention import RETENTION_DAYS, log_survival_steps, survival_one
from trialwatch.models.state import PatientState
from trialwatch.schemas.contract import MS_PER_DAY

__all__ = ["RETENTION_DAYS", "attendance_rate", "clv"]

ATTENDANCE_PRIOR_WEIGHT = 3.0


def attendance_rate(state: PatientState, population_rate: float) -> float:
    w = ATTENDANCE_PRIOR_WEIGHT
    resolved = state.completed_visits + state.missed_visits
    return (state.completed_visits + w * population_rate) / (resolved + w)


def clv(state: PatientState, at_ms: int, curve, population_rate: float) -> tuple[float, float]:
    """(CLV, value_at_risk) in USD for ``state`` at ``at_ms`` under survival ``curve``."""
    econ = PHASE_ECONOMICS[state.phase]
    attend = attendance_rate(state, population_rate)
    log_s, slopes = log_survival_steps(curve)
    daily = discount_per_day(econ.annual_discount_rate)  # once per call, not per visit
    interval = state.visit_interval_days * MS_PER_DAY
    expected = certain = 0.0
    for k in range(state.resolved_visits + 1, state.planned_visits + 1):
        days = max((state.enrolled_at + k * interval - at_ms) / MS_PER_DAY, 0.0)
        value = econ.visit_value * attend * math.exp(-daily * days)
        certain += value
        expected += value * survival_one(days, log_s, slopes)
    end_ms = state.enrolled_at + state.planned_visits * interval
    end_days = max((end_ms - at_ms) / MS_PER_DAY + 1, 0.0)
    completion = econ.completion_value * math.exp(-daily * end_days)
    certain += completion
    expected += completion * survival_one(end_days, log_s, slopes)
    return expected, certain - expected
