"""Per-trial recalibration: a Platt map on the model's log-odds, fitted from matured outcomes.

A trial whose population differs from the training worlds can be ranked well
and still be told the wrong probabilities (the realized withdrawal rate is
2-fold off). Its matured predictions (``models.monitoring.OutcomeWindow``) say
by how much, so the trial gets its own map

    p' = sigmoid(a + b * logit(p))

on top of what it is served now. Why Platt and not isotonic: two parameters
are estimable from a few hundred outcomes with tens of positives, the map is
strictly increasing (b > 0), so the ranking and ROC-AUC of the trial are
untouched, it composes with the map already in place (two Platt maps are one),
and it fits from the window's binned counts exactly as the stream holds them,
so the worker and ``trialwatch recalibrate`` give the same map. Isotonic needs
many more positives, and its steps tie scores that the model ranked apart.

Guardrails (``RecalibrationPolicy``), each reported in the proposal:
- enough matured outcomes and positives;
- a miscalibration that the counts can see: |log calibration-in-the-large|
  above its tolerance and above two standard errors (about 1 / sqrt(positives));
- a held-out check: fitted on the older two thirds of the window's outcomes
  (by prediction week), the map must lower the Brier score of the newest third;
- a bounded change: |a| and |log b| are clipped, and the clip is reported.
The map that goes live is then refitted on the whole window (with the same
bounds), and its tiers are chosen again by expected cost on the recalibrated
window (``models.tiers.choose_tiers``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trialwatch.models.monitoring import (
    WEEK_MS,
    OutcomeWindow,
    WeekCounts,
    merge,
    metrics_of,
    platt_fit,
)
from trialwatch.models.tiers import Tiers, choose_tiers
from trialwatch.schemas.contract import MS_PER_DAY


@dataclass(frozen=True)
class RecalibrationPolicy:
    min_outcomes: int = 500
    min_positives: int = 50
    tolerance: float = 0.05  # |log CITL| below this is left alone (about 5%)
    max_shift: float = 1.5  # |a| bound: at most e^1.5 = 4.5-fold odds
    max_log_slope: float = math.log(2.0)  # b within [1/2, 2]
    holdout_share: float = 1 / 3


@dataclass(frozen=True)
class Calibration:
    """A trial's map on top of the model's own calibration, and its tiers."""

    model_version: str
    trial_id: str
    version: str  # "<trial>.r<k>": the k-th recalibration of this trial on this model
    a: float
    b: float
    tiers: Tiers
    report: dict[str, Any] = field(default_factory=dict, compare=False)

    def apply(self, p: np.ndarray) -> np.ndarray:
        q = np.clip(p, 1e-12, 1 - 1e-12)
        return 1 / (1 + np.exp(-(self.a + self.b * np.log(q / (1 - q)))))

    def apply_one(self, p: float) -> float:
        q = min(max(p, 1e-12), 1 - 1e-12)
        return 1 / (1 + math.exp(-(self.a + self.b * math.log(q / (1 - q)))))

    def to_json(self) -> dict[str, Any]:
        return {
            "model_version": self.model_version,
            "trial_id": self.trial_id,
            "version": self.version,
            "method": "Platt map on the served log-odds: p' = sigmoid(a + b * logit(p))",
            "a": self.a,
            "b": self.b,
            "tiers": self.tiers.to_json(),
            "report": self.report,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Calibration:
        return cls(
            data["model_version"],
            data["trial_id"],
            data["version"],
            float(data["a"]),
            float(data["b"]),
            Tiers.from_json(data["tiers"]),
            dict(data.get("report") or {}),
        )


@dataclass(frozen=True)
class Proposal:
    """What a window says: a new calibration, or why not (``calibration`` is None)."""

    calibration: Calibration | None
    reason: str
    report: dict[str, Any]


def served_version(model_version: str, calibration: Calibration | None) -> str:
    """The version a prediction is recorded under: the model, plus the trial's map."""
    return model_version if calibration is None else f"{model_version}+{calibration.version}"


def model_of(served: str) -> str:
    """The model version of a served version (``served_version``'s inverse, in part)."""
    return served.split("+", 1)[0]


def next_version(trial_id: str, current: Calibration | None) -> str:
    k = 1 if current is None else int(current.version.rsplit(".r", 1)[1]) + 1
    return f"{trial_id}.r{k}"


def mature_weeks(window: OutcomeWindow, horizon_days: float) -> list[WeekCounts]:
    """The window's weeks whose predictions' horizons have all passed by its newest
    week. Why: a withdrawal matures its predictions at once, a negative only after
    the horizon, so the recent weeks hold the positives and not yet the negatives
    (their realized rate is several times too high)."""
    if window.newest_week is None:
        return []
    now = window.newest_week * WEEK_MS
    horizon = horizon_days * MS_PER_DAY
    return [c for w, c in sorted(window.weeks.items()) if (w + 1) * WEEK_MS + horizon <= now]


def propose(
    window: OutcomeWindow,
    model_version: str,
    current: Calibration | None,
    horizon_days: float,
    policy: RecalibrationPolicy | None = None,
) -> Proposal:
    """A new calibration for ``window``'s trial, fitted on what it served (``current``
    on top of ``model_version``) in its mature weeks, or the guardrail that said no."""
    policy = policy or RecalibrationPolicy()
    weeks = mature_weeks(window, horizon_days)
    total = merge(weeks)
    before = metrics_of(total)
    report: dict[str, Any] = {
        "fitted_on": {
            "served_version": window.model_version,
            "outcomes": before["n"],
            "positives": before["positives"],
            "mature_weeks": len(weeks),
            "weeks_in_window": len(window.weeks),
            "newest_week_start": window.metrics()["newest_week_start"],
        },
        "before": _summary(before),
        "policy": policy.__dict__,
    }
    if before["n"] < policy.min_outcomes or before["positives"] < policy.min_positives:
        return Proposal(None, "too few matured outcomes", report)
    citl = before["calibration_in_the_large"]
    needed = max(policy.tolerance, 2 / math.sqrt(before["positives"]))
    if abs(math.log(citl)) <= needed:
        return Proposal(None, f"calibrated within {needed:.1%} (2 standard errors)", report)
    fit_part, held_out = _split(weeks, policy.holdout_share)
    if not held_out:
        return Proposal(None, "one week of outcomes: nothing to hold out", report)
    trial_fit = _bounded_fit(fit_part, policy)
    if trial_fit is None:
        return Proposal(None, "the counts identify no map", report)
    brier_before = _brier(held_out, 0.0, 1.0)
    brier_after = _brier(held_out, *trial_fit[:2])
    report["held_out"] = {"brier_before": brier_before, "brier_after": brier_after}
    if not brier_after < brier_before:
        return Proposal(None, "the held-out Brier score does not improve", report)
    final = _bounded_fit(weeks, policy)
    assert final is not None  # the whole window fits if its older part did
    a2, b2, clipped = final
    a1, b1 = (0.0, 1.0) if current is None else (current.a, current.b)
    after = _recalibrated_metrics(total, a2, b2)
    report.update(after=_summary(after), clipped=clipped, step={"a": a2, "b": b2})
    tiers = choose_tiers(*_rows(total, a2, b2))
    calibration = Calibration(
        model_version=model_version,
        trial_id=window.trial_id,
        version=next_version(window.trial_id, current),
        a=a2 + b2 * a1,  # sigmoid(a2 + b2 * (a1 + b1 * z)): one map on the model's log-odds
        b=b2 * b1,
        tiers=tiers,
        report=report,
    )
    return Proposal(calibration, "recalibrated", report)


def _split(weeks: list[WeekCounts], share: float) -> tuple[list[WeekCounts], list[WeekCounts]]:
    """Older weeks holding (1 - share) of the outcomes, and the newer rest."""
    sizes = [sum(c.pos) + sum(c.neg) for c in weeks]
    target = (1 - share) * sum(sizes)
    running = 0
    for i, size in enumerate(sizes):
        running += size
        if running >= target:
            return weeks[: i + 1], weeks[i + 1 :]
    return weeks, []


def _bounded_fit(
    weeks: list[WeekCounts], policy: RecalibrationPolicy
) -> tuple[float, float, bool] | None:
    c = merge(weeks)
    fit = platt_fit(c.pos, c.neg, c.logit_sum)
    if fit is None:
        return None
    a, b = fit
    lo, hi = math.exp(-policy.max_log_slope), math.exp(policy.max_log_slope)
    a_clipped = min(max(a, -policy.max_shift), policy.max_shift)
    b_clipped = min(max(b, lo), hi)
    return a_clipped, b_clipped, (a_clipped, b_clipped) != (a, b)


def _mapped(c: WeekCounts, a: float, b: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positives, negatives and sigmoid(a + b * z) of the non-empty bins, z being each
    bin's mean log-odds (the same approximation for every map, the identity too, so
    the maps compare fairly)."""
    pos, neg = np.array(c.pos, dtype=np.float64), np.array(c.neg, dtype=np.float64)
    count = pos + neg
    keep = count > 0
    z = np.array(c.logit_sum)[keep] / count[keep]
    return pos[keep], neg[keep], 1 / (1 + np.exp(-(a + b * z)))


def _brier(weeks: list[WeekCounts], a: float, b: float) -> float:
    pos, neg, q = _mapped(merge(weeks), a, b)
    return float(((pos * (1 - q) ** 2) + neg * q**2).sum() / (pos + neg).sum())


def _rows(c: WeekCounts, a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    """The window as (recalibrated probability, label) rows, one per outcome."""
    pos, neg, q = _mapped(c, a, b)
    p = np.concatenate([np.repeat(q, pos.astype(np.int64)), np.repeat(q, neg.astype(np.int64))])
    y = np.concatenate([np.ones(int(pos.sum())), np.zeros(int(neg.sum()))])
    return p, y


def _recalibrated_metrics(c: WeekCounts, a: float, b: float) -> dict[str, Any]:
    """The window's metrics had it been served through the map (bin means)."""
    pos, neg, q = _mapped(c, a, b)
    n, n_pos = float((pos + neg).sum()), float(pos.sum())
    mean_p = float(((pos + neg) * q).sum() / n)
    return {
        "n": int(n),
        "positives": int(n_pos),
        "mean_probability": mean_p,
        "realized_rate": n_pos / n,
        "calibration_in_the_large": mean_p / (n_pos / n),
        "brier": _brier([c], a, b),
        "roc_auc": metrics_of(c)["roc_auc"],  # a strictly increasing map keeps the ranking
    }


def _summary(m: dict[str, Any]) -> dict[str, Any]:
    return {k: m[k] for k in SUMMARY_KEYS if k in m}


SUMMARY_KEYS = (
    "n",
    "positives",
    "mean_probability",
    "realized_rate",
    "calibration_in_the_large",
    "calibration_slope",
    "brier",
    "roc_auc",
    "pr_auc",
)
