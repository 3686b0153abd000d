"""Participant value: CLV from a retention curve S(t), and value at risk.

Retention curve: a multi-horizon model (one LightGBM with the horizon as an
input, monotone increasing in it) gives P(withdraw within h days) for h in
RETENTION_DAYS. We chose it over a discrete-time hazard model because it is
trained directly on the quantity CLV needs (survival at visit dates) from the
same one-row-per-event data as the churn model, needs one predict call per
event, and the monotone constraint guarantees a proper, non-increasing S(t).
Between horizons S is interpolated log-linearly (constant hazard in between).

CLV at time t0 = sum over remaining scheduled visits k of
    visit_value * S(t_k) * attend * discount(t_k)
  + completion_value * S(t_end) * discount(t_end)
where ``attend`` is the participant's attendance rate shrunk to the training
population's. ``value_at_risk`` = the same with S = 1, minus CLV.
"""

from __future__ import annotations

import math

import numpy as np

from models.economics import MS_PER_DAY, PHASE_ECONOMICS, discount_factor
from models.state import PatientState

RETENTION_DAYS: tuple[int, ...] = (30, 60, 90, 180, 270, 365, 540)
ATTENDANCE_PRIOR_WEIGHT = 3.0


def survival_at(days: float, curve: np.ndarray) -> float:
    """S(days) from S at RETENTION_DAYS (log-linear between points, S(0) = 1)."""
    if days <= 0:
        return 1.0
    prev_t, prev_log = 0.0, 0.0
    for t, s in zip(RETENTION_DAYS, curve, strict=True):
        log_s = math.log(max(s, 1e-12))
        if days <= t:
            return math.exp(prev_log + (log_s - prev_log) * (days - prev_t) / (t - prev_t))
        prev_t, prev_log = t, log_s
    rate = prev_log / prev_t  # beyond the last horizon: keep the average hazard
    return math.exp(rate * days)


def attendance_rate(state: PatientState, population_rate: float) -> float:
    w = ATTENDANCE_PRIOR_WEIGHT
    resolved = state.completed_visits + state.missed_visits
    return (state.completed_visits + w * population_rate) / (resolved + w)


def clv(
    state: PatientState, at_ms: int, curve: np.ndarray, population_rate: float
) -> tuple[float, float]:
    """(CLV, value_at_risk) in USD for ``state`` at ``at_ms`` under survival ``curve``."""
    econ = PHASE_ECONOMICS[state.phase]
    rate = econ.annual_discount_rate
    attend = attendance_rate(state, population_rate)
    interval = state.visit_interval_days * MS_PER_DAY
    expected = certain = 0.0
    for k in range(state.resolved_visits + 1, state.planned_visits + 1):
        days = max((state.enrolled_at + k * interval - at_ms) / MS_PER_DAY, 0.0)
        value = econ.visit_value * attend * discount_factor(days, rate)
        certain += value
        expected += value * survival_at(days, curve)
    end_days = max(
        (state.enrolled_at + state.planned_visits * interval - at_ms) / MS_PER_DAY + 1, 0.0
    )
    completion = econ.completion_value * discount_factor(end_days, rate)
    certain += completion
    expected += completion * survival_at(end_days, curve)
    return expected, certain - expected
