"""Realized accuracy from matured outcomes: bounded counts and the metrics they give.

One ``OutcomeWindow`` per (model version, trial) holds, for each event-time week of
prediction, binned counts of matured predictions: positives and negatives per
probability bin, per tier, and the sums that give the Brier score exactly. The
window keeps the newest ``window_weeks`` weeks, so its size never grows with
traffic. The metrics (ROC-AUC, PR-AUC, Brier, calibration-in-the-large and slope,
recall and precision at each tier) come from these counts alone, so the stream
and ``trialwatch evaluate`` agree by construction: both add the same outcomes.

ROC-AUC and PR-AUC are computed on ``N_BINS`` logit-spaced probability bins
(ties within a bin count half), which is within about 0.002 of the exact value
for the scores this model gives.

    >>> from trialwatch.models.monitoring import OutcomeWindow
    >>> from trialwatch.models.outcomes import MaturedOutcome
    >>> w = OutcomeWindow("v1", "T1")
    >>> for i in range(100):  # two a day: all within the 26-week window
    ...     counted = w.add(MaturedOutcome("v1", i * 43_200_000, 0.2, 2, int(i % 5 == 0)))
    >>> m = w.metrics()
    >>> m["n"], m["positives"], round(m["calibration_in_the_large"], 3)
    (100, 20, 1.0)
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trialwatch.models.alerts import TIER_ORDER
from trialwatch.models.outcomes import MaturedOutcome
from trialwatch.schemas.contract import MS_PER_DAY

WEEK_MS = 7 * MS_PER_DAY
DEFAULT_WINDOW_WEEKS = 26  # half a year of prediction weeks: recalibration fits the
# weeks older than the horizon (models.recalibration.mature_weeks), 16 of them at 60 days
_LOGIT_EDGES = np.linspace(-7.0, 3.0, 101)
EDGES = tuple(float(1 / (1 + math.exp(-z))) for z in _LOGIT_EDGES)  # probability cut points
N_BINS = len(EDGES) + 1
N_TIERS = len(TIER_ORDER)


def bin_of(p: float) -> int:
    return bisect.bisect_right(EDGES, p)


@dataclass
class WeekCounts:
    """Matured predictions of one event-time week, binned."""

    pos: list[int] = field(default_factory=lambda: [0] * N_BINS)
    neg: list[int] = field(default_factory=lambda: [0] * N_BINS)
    logit_sum: list[float] = field(default_factory=lambda: [0.0] * N_BINS)
    tier_pos: list[int] = field(default_factory=lambda: [0] * N_TIERS)
    tier_neg: list[int] = field(default_factory=lambda: [0] * N_TIERS)
    sum_p: float = 0.0
    sum_p2: float = 0.0
    sum_py: float = 0.0

    def add(self, p: float, tier: int, y: int) -> None:
        b = bin_of(p)
        q = min(max(p, 1e-9), 1 - 1e-9)
        self.logit_sum[b] += math.log(q / (1 - q))
        if y:
            self.pos[b] += 1
            self.tier_pos[tier] += 1
            self.sum_py += p
        else:
            self.neg[b] += 1
            self.tier_neg[tier] += 1
        self.sum_p += p
        self.sum_p2 += p * p


@dataclass
class OutcomeWindow:
    """Matured outcomes of one model version in one trial, over a sliding week window."""

    model_version: str
    trial_id: str
    window_weeks: int = DEFAULT_WINDOW_WEEKS
    weeks: dict[int, WeekCounts] = field(default_factory=dict)
    newest_week: int | None = None
    applied: dict[int, int] = field(default_factory=dict)  # input partition -> newest offset
    revision: int = field(default=0, compare=False)  # counts changes (for encoders' caches)

    def add_batch(self, partition: int, offset: int, outcomes: Iterable[MaturedOutcome]) -> bool:
        """Count the outcomes one input event matured, once: False (and nothing counted)
        when an event at or after ``offset`` of that input partition was counted already.

        Why offsets work: a partition's input events are processed in offset order,
        and a re-delivered event keeps its offset; a replayed history matures nothing
        (its events are duplicates in the patient state).
        """
        if offset <= self.applied.get(partition, -1):
            return False
        self.applied[partition] = offset
        self.revision += 1
        for outcome in outcomes:
            self.add(outcome)
        return True

    def add(self, outcome: MaturedOutcome) -> bool:
        """Count one outcome; False when its week already left the window."""
        week = outcome.predicted_at // WEEK_MS
        if self.newest_week is not None and week <= self.newest_week - self.window_weeks:
            return False
        if self.newest_week is None or week > self.newest_week:
            self.newest_week = week
            oldest = week - self.window_weeks
            for old in [w for w in self.weeks if w <= oldest]:
                del self.weeks[old]
        counts = self.weeks.get(week)
        if counts is None:
            counts = self.weeks[week] = WeekCounts()
        counts.add(outcome.probability, outcome.tier_rank, outcome.label)
        return True

    def merged(self) -> WeekCounts:
        return merge(counts for _, counts in sorted(self.weeks.items()))

    def metrics(self) -> dict[str, Any]:
        return {
            "model_version": self.model_version,
            "trial_id": self.trial_id,
            "window_weeks": self.window_weeks,
            "newest_week_start": None
            if self.newest_week is None
            else int(self.newest_week * WEEK_MS),
            **metrics_of(self.merged()),
        }

    # ------------------------------------------------------- serialization
    def to_record(self) -> dict[str, Any]:
        """A plain dict for ``schemas/outcome_window.v1.avsc``."""
        return {
            "model_version": self.model_version,
            "trial_id": self.trial_id,
            "window_weeks": self.window_weeks,
            "newest_week": self.newest_week,
            "applied_partitions": sorted(self.applied),
            "applied_offsets": [self.applied[p] for p in sorted(self.applied)],
            "weeks": [
                {"week": week, **{k: getattr(c, k) for k in _WEEK_FIELDS}}
                for week, c in sorted(self.weeks.items())
            ],
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> OutcomeWindow:
        weeks = {
            w["week"]: WeekCounts(**{k: _copy(w[k]) for k in _WEEK_FIELDS}) for w in record["weeks"]
        }
        applied = dict(zip(record["applied_partitions"], record["applied_offsets"], strict=True))
        return cls(
            record["model_version"],
            record["trial_id"],
            record["window_weeks"],
            weeks,
            record["newest_week"],
            applied,
        )

    def metrics_record(self) -> dict[str, Any]:
        """The metrics as a ``schemas/model_metrics.v1.avsc`` record."""
        m = self.metrics()
        tiers = m.pop("tiers") or {}
        return {**m, "tiers": [{"tier": t, **values} for t, values in tiers.items()]}


def merge(weeks: Iterable[WeekCounts]) -> WeekCounts:
    """The sum of week counts (in the order given: float sums depend on it)."""
    total = WeekCounts()
    for counts in weeks:
        for name in ("pos", "neg", "logit_sum", "tier_pos", "tier_neg"):
            mine, theirs = getattr(total, name), getattr(counts, name)
            for i, v in enumerate(theirs):
                mine[i] += v
        total.sum_p += counts.sum_p
        total.sum_p2 += counts.sum_p2
        total.sum_py += counts.sum_py
    return total


_WEEK_FIELDS = ("pos", "neg", "logit_sum", "tier_pos", "tier_neg", "sum_p", "sum_p2", "sum_py")


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


def metrics_of(c: WeekCounts) -> dict[str, Any]:
    """Realized metrics from binned counts; None where the counts cannot say."""
    pos, neg = np.array(c.pos, dtype=np.float64), np.array(c.neg, dtype=np.float64)
    n_pos, n_neg = float(pos.sum()), float(neg.sum())
    n = n_pos + n_neg
    out: dict[str, Any] = {"n": int(n), "positives": int(n_pos)}
    if n == 0:
        return {**out, **dict.fromkeys(_METRIC_NAMES)}
    mean_p = c.sum_p / n
    rate = n_pos / n
    out.update(
        realized_rate=rate,
        mean_probability=mean_p,
        brier=(c.sum_p2 - 2 * c.sum_py + n_pos) / n,
        calibration_in_the_large=mean_p / rate if n_pos else None,
        roc_auc=_roc_auc(pos, neg) if n_pos and n_neg else None,
        pr_auc=_pr_auc(pos, neg) if n_pos else None,
        calibration_slope=_slope(pos, neg, np.array(c.logit_sum)) if n_pos and n_neg else None,
        tiers=_tiers(c.tier_pos, c.tier_neg),
    )
    return out


_METRIC_NAMES = (
    "realized_rate",
    "mean_probability",
    "brier",
    "calibration_in_the_large",
    "roc_auc",
    "pr_auc",
    "calibration_slope",
    "tiers",
)


def _roc_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties (same bin) counted half."""
    neg_below = np.concatenate(([0.0], np.cumsum(neg)[:-1]))
    wins = (pos * neg_below).sum() + 0.5 * (pos * neg).sum()
    return float(wins / (pos.sum() * neg.sum()))


def _pr_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Average precision with one threshold per bin, from the highest bin down."""
    tp = np.cumsum(pos[::-1])
    flagged = np.cumsum((pos + neg)[::-1])
    precision = np.divide(tp, flagged, out=np.zeros_like(tp), where=flagged > 0)
    return float((precision * pos[::-1]).sum() / pos.sum())


def _slope(pos: np.ndarray, neg: np.ndarray, logit_sum: np.ndarray) -> float | None:
    """Slope of a logistic regression of the outcome on logit(p), on bin means."""
    fit = platt_fit(pos, neg, logit_sum)
    return None if fit is None else fit[1]


def platt_fit(
    pos: np.ndarray, neg: np.ndarray, logit_sum: np.ndarray
) -> tuple[float, float] | None:
    """(a, b) of P(y) = sigmoid(a + b * logit(p)) fitted on binned counts (Newton).

    Each bin stands for its predictions at their mean log-odds: bins are 0.1
    logit wide, so this is the weighted logistic regression of the outcomes on
    the predictions' log-odds to well within the noise of any real window.
    None when the counts cannot identify a slope (one bin, or separable).
    """
    pos, neg = np.asarray(pos, dtype=np.float64), np.asarray(neg, dtype=np.float64)
    count = pos + neg
    keep = count > 0
    x = np.asarray(logit_sum, dtype=np.float64)[keep] / count[keep]
    k, m = pos[keep], count[keep]
    if len(x) == 0 or np.ptp(x) == 0:
        return None
    a, b = 0.0, 1.0
    for _ in range(50):
        mu = 1 / (1 + np.exp(-np.clip(a + b * x, -30.0, 30.0)))
        w = m * mu * (1 - mu)
        grad = np.array([(k - m * mu).sum(), ((k - m * mu) * x).sum()])
        hess = np.array([[w.sum(), (w * x).sum()], [(w * x).sum(), (w * x * x).sum()]])
        try:
            delta = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            return None
        a, b = a + delta[0], b + delta[1]
        if not (np.isfinite(a) and np.isfinite(b)):  # separable (tiny windows)
            return None
        if abs(delta).max() < 1e-10:
            break
    return float(a), float(b)


def _tiers(tier_pos: list[int], tier_neg: list[int]) -> dict[str, dict[str, float | None]]:
    """Recall and precision of flagging at or above each tier above LOW."""
    positives = sum(tier_pos)
    out = {}
    for rank in range(1, N_TIERS):
        hits = sum(tier_pos[rank:])
        flagged = hits + sum(tier_neg[rank:])
        out[TIER_ORDER[rank]] = {
            "recall": hits / positives if positives else None,
            "precision": hits / flagged if flagged else None,
        }
    return out


def pooled(windows: Iterable[OutcomeWindow]) -> list[dict[str, Any]]:
    """Metrics per model version over all its trials' windows (each as it stands)."""
    by_version: dict[str, list[OutcomeWindow]] = {}
    for window in sorted(windows, key=lambda w: (w.model_version, w.trial_id)):
        by_version.setdefault(window.model_version, []).append(window)
    return [
        {
            "model_version": version,
            "trial_id": "*",
            **metrics_of(merge(w.merged() for w in group)),
        }
        for version, group in by_version.items()
    ]


def count_outcome(
    windows: dict[tuple[str, str], OutcomeWindow],
    trial_id: str,
    outcome: MaturedOutcome,
    window_weeks: int = DEFAULT_WINDOW_WEEKS,
) -> None:
    """Add one outcome to its (model version, trial) window, made on first use."""
    key = (outcome.model_version, trial_id)
    window = windows.get(key)
    if window is None:
        window = windows[key] = OutcomeWindow(outcome.model_version, trial_id, window_weeks)
    window.add(outcome)


def evaluate_outcomes(
    outcomes: list[tuple[str, MaturedOutcome]], window_weeks: int = DEFAULT_WINDOW_WEEKS
) -> dict[tuple[str, str], OutcomeWindow]:
    """Windows by (model version, trial) from ``(trial_id, outcome)`` pairs."""
    windows: dict[tuple[str, str], OutcomeWindow] = {}
    for trial_id, outcome in outcomes:
        count_outcome(windows, trial_id, outcome, window_weeks)
    return windows
