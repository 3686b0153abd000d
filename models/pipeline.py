"""The per-event step the stream worker and the offline backfill both call.

apply the event to the state -> features at the event's time -> score ->
alert decision (event-time cooldown) -> reasons for alerts only. Because this
one function produces every score, stream and backfill scores are identical.

Each score is also recorded as an open prediction in the state, and an event
may mature earlier ones (``models.outcomes``; ``StepResult.matured``): the
stream and ``trialwatch evaluate`` grade the model from these.

A re-delivered copy of a patient's LATEST applied event is a duplicate, but
its outputs are rebuilt (``StepResult.replayed``): after a crash the state's
changelog may be durable while that event's score or alert never left the
producer, and the state alone can still reproduce them exactly (it has not
moved since). Re-sending is idempotent downstream: scores are keyed by
event_id, alert ids are deterministic and claimed in Redis. Matured outcomes
are NOT rebuilt: the state no longer holds them, and re-sending them on a
replayed history would count them twice (see ``streams.monitoring``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from trialwatch.models.alerts import TIER_RANK, AlertPolicy, alert_id, decide
from trialwatch.models.exceptions import NothingToScoreError
from trialwatch.models.features import features
from trialwatch.models.outcomes import MaturedOutcome, mature, record
from trialwatch.models.state import (
    Outcome,
    PatientState,
    apply,
    latest_key,
    set_open_predictions,
    with_alert,
)
from trialwatch.schemas.contract import TERMINAL

DEFAULT_POLICY = AlertPolicy()
# Where a consumed event ends, as the worker's metrics and the backfill report name it.
OUTCOME_LABELS = ("scored", "ended", "after_end", "duplicate", "dead_lettered")


@dataclass(frozen=True, slots=True)
class StepResult:
    state: PatientState
    outcome: Outcome
    score: dict | None = None
    alert: dict | None = None
    replayed: bool = False  # a duplicate whose outputs were rebuilt for re-sending
    shadow: dict | None = None  # the challenger's score of the same event (never alerts)
    matured: tuple[MaturedOutcome, ...] = ()  # earlier predictions this event matured
    features: Any = None  # the scored feature row (numpy), for drift monitoring

    @property
    def label(self) -> str:
        """One of ``OUTCOME_LABELS`` (all but ``dead_lettered``, which the caller decides)."""
        if self.outcome is Outcome.DUPLICATE:
            return "duplicate"
        if self.outcome is Outcome.AFTER_END:
            return "after_end"
        return "scored" if self.score is not None else "ended"


def step(
    state: PatientState | None,
    event: dict,
    scorer: Any,
    policy: AlertPolicy = DEFAULT_POLICY,
    challenger: Any = None,
) -> StepResult:
    """``challenger``, when given, scores the same feature row as a shadow: its
    prediction is recorded to mature beside the champion's, and it never alerts
    (features and alert decisions read neither)."""
    new_state, outcome = apply(state, event)
    if outcome is Outcome.DUPLICATE:
        if new_state.last_event_hash == latest_key(event) and not new_state.ended:
            return _rebuild(new_state, event, scorer, challenger)
        return StepResult(new_state, outcome)
    if outcome is not Outcome.APPLIED:
        return StepResult(new_state, outcome)
    at = event["event_time"]
    # new_state is apply's fresh object for this event: its open predictions are set
    # in place (set_open_predictions), not copied with replace.
    still_open, matured = mature(
        new_state.open_predictions, event["event_type"], at, scorer.horizon_days
    )
    if event["event_type"] in TERMINAL:
        set_open_predictions(new_state, still_open)
        return StepResult(new_state, outcome, matured=matured)
    x = features(new_state, at)  # features never read the open predictions
    s = scorer.score_one(x, new_state, at)
    score = _score_record(new_state, event, s)
    open_now = record(still_open, (at, s.probability, TIER_RANK[s.tier], s.served_version))
    shadow = None
    if challenger is not None:
        c = challenger.score_one(x, new_state, at)
        shadow = _score_record(new_state, event, c)
        open_now = record(open_now, (at, c.probability, TIER_RANK[c.tier], c.served_version))
    set_open_predictions(new_state, open_now)
    decision = decide(new_state, s.tier, at, policy)
    if decision is None:
        return StepResult(new_state, outcome, score, matured=matured, features=x, shadow=shadow)
    alert = _alert_record(score, s.tier, decision.previous_tier, x, scorer)
    alerted = with_alert(new_state, s.tier, at, latest_key(event))
    return StepResult(alerted, outcome, score, alert, matured=matured, features=x, shadow=shadow)


def _rebuild(state: PatientState, event: dict, scorer: Any, challenger: Any) -> StepResult:
    """The outputs the latest event produced, from the state it left behind."""
    at = event["event_time"]
    x = features(state, at)
    s = scorer.score_one(x, state, at)
    score = _score_record(state, event, s)
    alert = None
    if state.last_alert_event_hash == latest_key(event):
        alert = _alert_record(score, state.last_alert_tier, state.previous_alert_tier, x, scorer)
    shadow = None
    if challenger is not None:
        shadow = _score_record(state, event, challenger.score_one(x, state, at))
    return StepResult(state, Outcome.DUPLICATE, score, alert, replayed=True, shadow=shadow)


def _score_record(state: PatientState, event: dict, s: Any) -> dict:
    return {
        "patient_id": state.patient_id,
        "trial_id": state.trial_id,
        "site_id": state.site_id,
        "event_id": event["event_id"],
        "event_type": event["event_type"],
        "event_time": event["event_time"],
        "probability": s.probability,
        "horizon_days": s.horizon_days,
        "tier": s.tier,
        "retention_days": list(s.retention_days),
        "retention": list(s.retention),
        "clv": s.clv,
        "value_at_risk": s.value_at_risk,
        "model_version": s.model_version,
        "calibration_version": s.calibration_version,
    }


def _alert_record(score: dict, tier: str, previous: str | None, x, scorer: Any) -> dict:
    return {
        "alert_id": alert_id(score["event_id"], tier),
        **{k: score[k] for k in ID_FIELDS},
        "tier": tier,
        "previous_tier": previous,
        "probability": score["probability"],
        "horizon_days": score["horizon_days"],
        "clv": score["clv"],
        "value_at_risk": score["value_at_risk"],
        "recommended_action": scorer.recommended_action(tier),
        "reasons": scorer.explain(x, k=3),
        "model_version": score["model_version"],
        "calibration_version": score["calibration_version"],
    }


ID_FIELDS = ("patient_id", "trial_id", "site_id", "event_id", "event_type", "event_time")


def score_history(
    events: Iterable[dict], scorer: Any, policy: AlertPolicy = DEFAULT_POLICY
) -> dict[str, Any]:
    """Replay one patient's history from fresh state; the latest score with its reasons.

    What ``POST /score`` answers: nothing is read from or written to a table. The
    reasons are the last alert's, or (no alert) the same TreeSHAP explanation
    at the last scored event. Raises ``ModelError`` on an event the state refuses
    and ``NothingToScoreError`` when no event produced a score.
    """
    state, last_score, last_alert = None, None, None
    for event in sorted(events, key=lambda e: e["event_time"]):
        result = step(state, event, scorer, policy)
        state = result.state
        last_score = result.score or last_score
        last_alert = result.alert or last_alert
    if state is None or last_score is None:
        raise NothingToScoreError("no scorable event in the history")
    if last_alert is not None:
        reasons = last_alert["reasons"]
    else:
        reasons = scorer.explain(features(state, last_score["event_time"]), k=3)
    return {
        "score": last_score,
        "recommended_action": scorer.recommended_action(last_score["tier"]),
        "reasons": reasons,
    }
