"""``trialwatch evaluate``: grade a model on an event history, offline, as the stream does.

The events go through ``models.pipeline.step`` (via the backfill's replay), so
exactly the predictions the worker records are matured, and into the same
``models.monitoring`` windows and ``models.drift`` windows the worker keeps.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trialwatch.models.alerts import AlertPolicy
from trialwatch.models.drift import DEFAULT_WINDOW_WEEKS as DRIFT_WEEKS
from trialwatch.models.drift import DriftWindow, flags
from trialwatch.models.monitoring import (
    DEFAULT_WINDOW_WEEKS,
    OutcomeWindow,
    count_outcome,
    pooled,
)
from trialwatch.models.scorer import Scorer
from trialwatch.producers.backfill import backfill_events
from trialwatch.producers.files import read_events


@dataclass
class Evaluation:
    """Realized-accuracy windows by (model version, trial) and drift windows by trial."""

    outcomes: dict[tuple[str, str], OutcomeWindow] = field(default_factory=dict)
    drift: dict[str, DriftWindow] = field(default_factory=dict)
    records: int = 0
    rejected: int = 0

    def report(self, card: dict[str, Any] | None = None) -> dict[str, Any]:
        test = ((card or {}).get("test_metrics") or {}).get("lightgbm") or {}
        return {
            "records": self.records,
            "rejected": self.rejected,
            "model_test_roc_auc": test.get("roc_auc"),
            "realized": [w.metrics() for _, w in sorted(self.outcomes.items())],
            "realized_all_trials": pooled(self.outcomes.values()),
            "drift": {
                trial: {"rows": d.rows, "psi": (p := d.psi()), "flags": flags(p)}
                for trial, d in sorted(self.drift.items())
            },
        }


def evaluate_events(
    records: Iterable[tuple[int, dict | None, str | None]],
    scorer: Scorer,
    policy: AlertPolicy,
    *,
    window_weeks: int = DEFAULT_WINDOW_WEEKS,
    drift_weeks: int = DRIFT_WEEKS,
) -> Evaluation:
    """Replay ``(number, event, error)`` records and grade every matured prediction."""
    out = Evaluation()
    for rec in backfill_events(records, scorer, policy):
        out.records += 1
        if rec.reason is not None:
            out.rejected += 1
        if rec.trial_id is None:
            continue
        for outcome in rec.matured:
            count_outcome(out.outcomes, rec.trial_id, outcome, window_weeks)
        if rec.features is not None:
            drift = out.drift.get(rec.trial_id)
            if drift is None:
                drift = out.drift[rec.trial_id] = DriftWindow(scorer.drift_reference, drift_weeks)
            drift.add(rec.score["event_time"], rec.features, rec.score["probability"])
    return out


def evaluate_file(
    path: Path, model_dir: Path, policy: AlertPolicy, window_weeks: int = DEFAULT_WINDOW_WEEKS
) -> dict[str, Any]:
    """The ``evaluate`` report of an event file (JSON lines or Avro container)."""
    scorer = Scorer.load(model_dir)
    records = ((r.number, r.event, r.error) for r in read_events(path))
    evaluation = evaluate_events(records, scorer, policy, window_weeks=window_weeks)
    return {"input": str(path), "model_version": scorer.version, **evaluation.report(scorer.card)}
