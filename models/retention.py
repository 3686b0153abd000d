"""Retention curve S(t): a discrete-time hazard model on the churn score.

Time after an event is cut into buckets at ``RETENTION_DAYS``. For bucket b the
probability of withdrawing in it, given retention to its start, is a logistic
regression on the calibrated churn log-odds with one intercept per trial phase:

    q_b = sigmoid(alpha[b, phase] + beta[b] * logit(p_churn))

read as a constant daily hazard inside the bucket, so S(t) is piecewise
exponential, non-increasing by construction, S(0) = 1, and beyond the last edge
the last bucket's hazard continues.

Why this rather than LightGBM per horizon (what we had: one booster with the
horizon as an input): the churn model already ranks risk, and each bucket only
has to learn how today's risk carries into later months (beta < 1: risk regresses
to the mean) and how phases differ. It costs a few numpy operations instead of a
second LightGBM call on 7 rows per event, and it calibrates CLV better: the
booster's horizons were fitted on training rows where the churn signal is
in-sample; these are fitted on VALIDATION rows, out-of-sample as at serving time.
A row enters bucket b's fit only if its participant is still in the trial at the
bucket's start and the planned end lies beyond the bucket's end (full exposure),
so no censoring adjustment is needed. Known limit: a transient and a chronic
risk with the same churn score get the same curve; the CLV decile table of the
model card shows what that costs.
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
_EDGES_LIST = EDGES.tolist()
_WIDTHS_LIST = WIDTHS.tolist()


def logit(p: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    q = np.minimum(np.maximum(np.asarray(p, dtype=np.float64), eps), 1.0 - eps)
    return np.log(q / (1.0 - q))


@dataclass(frozen=True)
class RetentionModel:
    alpha: np.ndarray  # (buckets, phases)
    beta: np.ndarray  # (buckets,)

    def __post_init__(self) -> None:
        # Plain-float coefficients per phase for ``curve_one``, once, not per event.
        per_phase = [
            list(zip(col, self.beta.tolist(), strict=True)) for col in self.alpha.T.tolist()
        ]
        object.__setattr__(self, "_per_phase", per_phase)

    def daily_hazards(self, p: np.ndarray, phase_index: np.ndarray) -> np.ndarray:
        """(n, buckets) constant daily hazard per bucket for churn probabilities ``p``."""
        z = logit(p)[:, None]
        q = 1.0 / (1.0 + np.exp(-(self.alpha.T[phase_index] + self.beta * z)))
        return -np.log1p(-np.minimum(q, 1.0 - 1e-12)) / WIDTHS

    def curve_one(self, p: float, phase_index: int) -> list[float]:
        """``curves`` for one row in plain floats: numpy's per-call overhead on
        7-element arrays would cost more than the arithmetic (one per event)."""
        q_clip = min(max(p, 1e-7), 1.0 - 1e-7)
        z = math.log(q_clip / (1.0 - q_clip))
        out, cum = [], 0.0
        for a, b in self._per_phase[phase_index]:
            q = min(1.0 / (1.0 + math.exp(-(a + b * z))), 1.0 - 1e-12)
            cum += -math.log1p(-q)
            out.append(math.exp(-cum))
        return out

    def curves(self, p: np.ndarray, phase_index: np.ndarray) -> np.ndarray:
        """(n, len(RETENTION_DAYS)): S at each of RETENTION_DAYS."""
        return np.exp(-np.cumsum(self.daily_hazards(p, phase_index) * WIDTHS, axis=1))

    def to_json(self) -> dict:
        return {
            "kind": "discrete-time hazard on the calibrated churn log-odds, per phase",
            "retention_days": list(RETENTION_DAYS),
            "phases": list(PHASES),
            "alpha": self.alpha.tolist(),
            "beta": self.beta.tolist(),
        }

    @classmethod
    def from_json(cls, data: dict) -> RetentionModel:
        if tuple(data["retention_days"]) != RETENTION_DAYS or tuple(data["phases"]) != PHASES:
            raise ArtifactError("the retention model was fitted on other horizons or phases")
        alpha = np.asarray(data["alpha"], dtype=np.float64)
        beta = np.asarray(data["beta"], dtype=np.float64)
        if alpha.shape != (len(WIDTHS), len(PHASES)) or beta.shape != (len(WIDTHS),):
            raise ArtifactError("the retention model's coefficients have the wrong shape")
        return cls(alpha, beta)


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
    days_to_withdrawal: np.ndarray,
    days_to_end: np.ndarray,
    days_observed: np.ndarray | None = None,
) -> RetentionModel:
    """Per-bucket logistic hazards (training only: scikit-learn).

    ``days_to_withdrawal`` is +inf for rows of participants who never withdraw.
    A bucket with fewer than ``MIN_EVENTS_PER_BUCKET`` withdrawals among its
    at-risk rows keeps the previous bucket's coefficients, its intercept shifted
    by log(width ratio) (the same daily hazard, to first order). ``days_observed``
    (inf = to the end) leaves a row out of a bucket whose end the history does
    not reach, unless the withdrawal came first: censored, not a survivor.
    """
    from sklearn.linear_model import LogisticRegression

    z = logit(p)
    onehot = np.eye(len(PHASES))[phase_index]
    alpha = np.zeros((len(WIDTHS), len(PHASES)))
    beta = np.zeros(len(WIDTHS))
    for b, (lo, hi) in enumerate(itertools.pairwise(EDGES)):
        at_risk = (days_to_withdrawal > lo) & (days_to_end >= hi)
        if days_observed is not None:
            at_risk &= (days_to_withdrawal <= hi) | (days_observed >= hi)
        y = (days_to_withdrawal[at_risk] <= hi).astype(int)
        if y.sum() < MIN_EVENTS_PER_BUCKET or y.sum() == len(y):
            if b == 0:
                raise ValueError("too few withdrawals to fit a retention curve")
            alpha[b] = alpha[b - 1] + np.log(WIDTHS[b] / WIDTHS[b - 1])
            beta[b] = beta[b - 1]
            continue
        X = np.column_stack([z[at_risk], onehot[at_risk]])
        model = LogisticRegression(C=10.0, max_iter=2000, fit_intercept=False).fit(X, y)
        beta[b] = model.coef_[0, 0]
        alpha[b] = model.coef_[0, 1:]
    return RetentionModel(alpha=alpha, beta=beta)
