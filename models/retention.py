"""Retention curve S(t): a discrete-time hazard model on the churn score.

Time after an event is cut into buckets at ``RETENTION_DAYS``. For bucket b the
probability of withdrawing in it, given retention to its start, is a logistic
regression on the calibrated churn log-odds z with one intercept per trial phase
and a slope that may change at a knot (z = ``RISK_KNOT``, about the base rate)
and with the trial progress g in [0, 1] of the row (the ``trial_progress``
feature):

    u = z - RISK_KNOT
    q_b = sigmoid(alpha[b, phase] + min(u, 0) * ((1 - g) s0[b] + g s1[b])
                                  + max(u, 0) * ((1 - g) s2[b] + g s3[b]))

with every slope >= 0, so more risk today never means better retention later.

read as a constant daily hazard inside the bucket, so S(t) is piecewise
exponential, non-increasing by construction, S(0) = 1, and beyond the last edge
the last bucket's hazard continues.

Why this rather than LightGBM per horizon (what we had: one booster with the
horizon as an input): the churn model already ranks risk, and each bucket only
has to learn how today's risk carries into later months (slopes < 1: risk
regresses to the mean) and how phases differ. It costs a few numpy operations instead of a
second LightGBM call on 7 rows per event, and it calibrates CLV better: the
booster's horizons were fitted on training rows where the churn signal is
in-sample; these are fitted on VALIDATION rows, out-of-sample as at serving time.
A row enters bucket b's fit only if its participant is still in the trial at the
bucket's start and the planned end lies beyond the bucket's end (full exposure),
so no censoring adjustment is needed.

Why the knot and the progress: a transient and a chronic risk with the same
churn score carry differently into later months. Early in a trial the score
rests on what a participant is (distance, age, arm, engagement): it persists;
later an elevated score is more often an episode (AEs, a missed visit) that
passes. And above the base rate a higher 60-day score says less and less about
the hazard a year on (the frailest have left by then). One slope per bucket
(what the curve had) over-predicted the value of early, moderately risky
participants of long trials: with the more regularized churn model of issue #16
the CLV decile 4 of the quick card was 1.20x realised (1.14 with the model before
it); this form gives 1.14 (1.10), with every decile within 0.85-1.15.
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass

import numpy as np

from trialwatch.models.exceptions import ArtifactError

RETENTION_DAYS: tuple[int, ...] = (30, 60, 90, 180, 270, 365, 540)
PHASES: tuple[str, ...] = ("I", "II", "III", "IV")
EDGES = np.array((0, *RETENTION_DAYS), dtype=np.float64)
WIDTHS = np.diff(EDGES)
MIN_EVENTS_PER_BUCKET = 15
# The log-odds where the slope may change: logit(0.076), about the 60-day base rate.
RISK_KNOT = -2.5
N_SLOPES = 4
FIT_C = 10.0  # inverse L2 strength, as scikit-learn's C
_EDGES_LIST = EDGES.tolist()
_WIDTHS_LIST = WIDTHS.tolist()


def logit(p: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    q = np.minimum(np.maximum(np.asarray(p, dtype=np.float64), eps), 1.0 - eps)
    return np.log(q / (1.0 - q))


@dataclass(frozen=True)
class RetentionModel:
    """``alpha[b, phase]`` + the log-odds term: slopes ``slopes[b]`` are (below the
    knot at trial start, below at the end, above at the start, above at the end)."""

    alpha: np.ndarray  # (buckets, phases)
    slopes: np.ndarray  # (buckets, 4), each >= 0 when fitted
    knot: float = RISK_KNOT

    def __post_init__(self) -> None:
        # Plain-float coefficients per phase for ``curve_one``, once, not per event.
        slopes = [tuple(row) for row in self.slopes.tolist()]
        per_phase = [list(zip(col, slopes, strict=True)) for col in self.alpha.T.tolist()]
        object.__setattr__(self, "_per_phase", per_phase)

    def log_odds(self, p: np.ndarray, phase_index: np.ndarray, progress: np.ndarray) -> np.ndarray:
        """(n, buckets): the logit of each bucket's withdrawal probability."""
        u = logit(p) - self.knot
        terms = _slope_terms(u, _progress(progress))  # (n, 4)
        return self.alpha.T[phase_index] + terms @ self.slopes.T

    def daily_hazards(
        self, p: np.ndarray, phase_index: np.ndarray, progress: np.ndarray
    ) -> np.ndarray:
        """(n, buckets) constant daily hazard per bucket for churn probabilities ``p``."""
        q = 1.0 / (1.0 + np.exp(-self.log_odds(p, phase_index, progress)))
        return -np.log1p(-np.minimum(q, 1.0 - 1e-12)) / WIDTHS

    def curve_one(self, p: float, phase_index: int, progress: float) -> list[float]:
        """``curves`` for one row in plain floats: numpy's per-call overhead on
        7-element arrays would cost more than the arithmetic (one per event)."""
        q_clip = min(max(p, 1e-7), 1.0 - 1e-7)
        u = math.log(q_clip / (1.0 - q_clip)) - self.knot
        g = min(max(progress, 0.0), 1.0) if progress == progress else 0.0  # NaN: start
        below, above = min(u, 0.0), max(u, 0.0)
        t0, t1, t2, t3 = below * (1.0 - g), below * g, above * (1.0 - g), above * g
        out, cum = [], 0.0
        for a, (s0, s1, s2, s3) in self._per_phase[phase_index]:
            eta = a + s0 * t0 + s1 * t1 + s2 * t2 + s3 * t3
            q = min(1.0 / (1.0 + math.exp(-eta)), 1.0 - 1e-12)
            cum += -math.log1p(-q)
            out.append(math.exp(-cum))
        return out

    def curves(self, p: np.ndarray, phase_index: np.ndarray, progress: np.ndarray) -> np.ndarray:
        """(n, len(RETENTION_DAYS)): S at each of RETENTION_DAYS."""
        hazards = self.daily_hazards(p, phase_index, progress)
        return np.exp(-np.cumsum(hazards * WIDTHS, axis=1))

    def to_json(self) -> dict:
        return {
            "kind": "discrete-time hazard on the calibrated churn log-odds, per phase; "
            "non-negative slopes below/above the knot, linear in trial progress",
            "retention_days": list(RETENTION_DAYS),
            "phases": list(PHASES),
            "knot": self.knot,
            "alpha": self.alpha.tolist(),
            "slopes": self.slopes.tolist(),
        }

    @classmethod
    def from_json(cls, data: dict) -> RetentionModel:
        if tuple(data["retention_days"]) != RETENTION_DAYS or tuple(data["phases"]) != PHASES:
            raise ArtifactError("the retention model was fitted on other horizons or phases")
        alpha = np.asarray(data["alpha"], dtype=np.float64)
        if "slopes" in data:
            slopes = np.asarray(data["slopes"], dtype=np.float64)
            knot = float(data["knot"])
        else:  # one slope per bucket (before the knot): the same curves, exactly
            beta = np.asarray(data["beta"], dtype=np.float64)
            if beta.shape != (len(WIDTHS),) or alpha.shape != (len(WIDTHS), len(PHASES)):
                raise ArtifactError("the retention model's coefficients have the wrong shape")
            knot = RISK_KNOT
            slopes = np.repeat(beta[:, None], N_SLOPES, axis=1)
            alpha = alpha + knot * beta[:, None]
        if alpha.shape != (len(WIDTHS), len(PHASES)) or slopes.shape != (len(WIDTHS), N_SLOPES):
            raise ArtifactError("the retention model's coefficients have the wrong shape")
        return cls(alpha, slopes, knot)


def _progress(progress) -> np.ndarray:
    """Trial progress in [0, 1] (a missing value reads as the trial's start)."""
    return np.clip(np.nan_to_num(np.asarray(progress, dtype=np.float64), nan=0.0), 0.0, 1.0)


def _slope_terms(u: np.ndarray, g: np.ndarray) -> np.ndarray:
    """(n, 4): the log-odds below and above the knot, split between trial start and end."""
    below, above = np.minimum(u, 0.0), np.maximum(u, 0.0)
    return np.column_stack([below * (1 - g), below * g, above * (1 - g), above * g])


def log_survival_steps(curve) -> tuple[list[float], list[float]]:
    """(log S at each edge from 0, log-slope per bucket) for ``survival_one``."""
    log_s = [0.0, *(math.log(max(s, 1e-300)) for s in curve)]
    return log_s, [(log_s[b + 1] - log_s[b]) / w for b, w in enumerate(_WIDTHS_LIST)]


def survival_one(days: float, log_s: list[float], slopes: list[float]) -> float:
    """``survival`` for one time, from ``log_survival_steps``."""
    b = min(bisect.bisect_right(_EDGES_LIST, days) - 1, len(slopes) - 1)
    return math.exp(log_s[b] + slopes[b] * (max(days, 0.0) - _EDGES_LIST[b]))


def fit_retention(
    p: np.ndarray,
    phase_index: np.ndarray,
    progress: np.ndarray,
    days_to_withdrawal: np.ndarray,
    days_to_end: np.ndarray,
    days_observed: np.ndarray | None = None,
) -> RetentionModel:
    """Per-bucket logistic hazards with non-negative slopes (training only: scipy).

    ``days_to_withdrawal`` is +inf for rows of participants who never withdraw.
    A bucket with fewer than ``MIN_EVENTS_PER_BUCKET`` withdrawals among its
    at-risk rows keeps the previous bucket's coefficients, its intercept shifted
    by log(width ratio) (the same daily hazard, to first order). ``days_observed``
    (inf = to the end) leaves a row out of a bucket whose end the history does
    not reach, unless the withdrawal came first: censored, not a survivor.
    """
    from scipy.optimize import minimize

    u = logit(p) - RISK_KNOT
    design = np.column_stack(
        [_slope_terms(u, _progress(progress)), np.eye(len(PHASES))[phase_index]]
    )
    bounds = [(0.0, None)] * N_SLOPES + [(None, None)] * len(PHASES)
    alpha = np.zeros((len(WIDTHS), len(PHASES)))
    slopes = np.zeros((len(WIDTHS), N_SLOPES))
    for b, (lo, hi) in enumerate(itertools.pairwise(EDGES)):
        at_risk = (days_to_withdrawal > lo) & (days_to_end >= hi)
        if days_observed is not None:
            at_risk &= (days_to_withdrawal <= hi) | (days_observed >= hi)
        y = (days_to_withdrawal[at_risk] <= hi).astype(np.float64)
        if y.sum() < MIN_EVENTS_PER_BUCKET or y.sum() == len(y):
            if b == 0:
                raise ValueError("too few withdrawals to fit a retention curve")
            alpha[b] = alpha[b - 1] + np.log(WIDTHS[b] / WIDTHS[b - 1])
            slopes[b] = slopes[b - 1]
            continue
        X = design[at_risk]

        def loss(w: np.ndarray, X: np.ndarray = X, y: np.ndarray = y):
            eta = X @ w
            q = 1.0 / (1.0 + np.exp(-eta))
            value = (np.logaddexp(0.0, eta) - y * eta).sum() + 0.5 / FIT_C * (w @ w)
            return value, X.T @ (q - y) + w / FIT_C

        w = minimize(loss, np.zeros(X.shape[1]), jac=True, method="L-BFGS-B", bounds=bounds).x
        slopes[b], alpha[b] = w[:N_SLOPES], w[N_SLOPES:]
    return RetentionModel(alpha=alpha, slopes=slopes)
