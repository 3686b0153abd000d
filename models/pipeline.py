"""The per-event step the stream worker and the offline backfill both call.

apply the event to the state -> features at the event's time -> score ->
alert decision (event-time cooldown) -> reasons for alerts only. Because this
one function produces every score, stream and backfill scores are identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.alerts import AlertPolicy, alert_id, decide
from models.features import features
from models.state import TERMINAL, Outcome, PatientState, apply, with_alert

DEFAULT_POLICY = AlertPolicy()


@dataclass(frozen=True, slots=True)
class StepResult:
    state: PatientState
    outcome: Outcome
    score: dict | None = None
    alert: dict | None = None


def step(
    state: PatientState | None, event: dict, scorer: Any, policy: AlertPolicy = DEFAULT_POLICY
) -> StepResult:
    new_state, outcome = apply(state, event)
    if outcome is not Outcome.APPLIED or event["event_type"] in TERMINAL:
        return StepResult(new_state, outcome)
    at = event["event_time"]
    x = features(new_state, at)
    s = scorer.score_one(x, new_state, at)
    ids = {
        "patient_id": new_state.patient_id,
        "trial_id": new_state.trial_id,
        "site_id": new_state.site_id,
        "event_id": event["event_id"],
        "event_type": event["event_type"],
        "event_time": at,
    }
    score = {
        **ids,
        "probability": s.probability,
        "horizon_days": s.horizon_days,
        "tier": s.tier,
        "retention_days": list(s.retention_days),
        "retention": list(s.retention),
        "clv": s.clv,
        "value_at_risk": s.value_at_risk,
        "model_version": scorer.version,
    }
    decision = decide(new_state, s.tier, at, policy)
    if decision is None:
        return StepResult(new_state, outcome, score)
    alert = {
        "alert_id": alert_id(event["event_id"], s.tier),
        **ids,
        "tier": s.tier,
        "previous_tier": decision.previous_tier,
        "probability": s.probability,
        "horizon_days": s.horizon_days,
        "clv": s.clv,
        "value_at_risk": s.value_at_risk,
        "recommended_action": scorer.recommended_action(s.tier),
        "reasons": scorer.explain(x, k=3),
        "model_version": scorer.version,
    }
    return StepResult(with_alert(new_state, s.tier, at), outcome, score, alert)
