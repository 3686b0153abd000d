"""The per-event step the stream worker and the offline backfill both call.

apply the event to the state -> features at the event's time -> score ->
alert decision (event-time cooldown) -> reasons for alerts only. Because this
one function produces every score, stream and backfill scores are identical.
``step_batch`` is the same step over many patients' events with one LightGBM
call per wave (the backfill's path); ``step`` and it share one core.

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

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from trialwatch.models.alerts import TIER_RANK, AlertPolicy, alert_id, decide
from trialwatch.models.exceptions import ModelError, NothingToScoreError
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

if TYPE_CHECKING:
    from trialwatch.models.scorer import Score

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
    (features and alert decisions read neither). Raises ``ModelError`` on an
    event the state refuses.

    The same core as ``step_batch`` with ``score_one`` in place of one
    ``score_many`` call: a batch's fixed costs are not paid by single events."""
    prepared = _prepare(state, event, scorer.horizon_days)
    if isinstance(prepared, StepResult):
        return prepared
    x, fresh, at = prepared.x, prepared.state, prepared.at
    s = scorer.score_one(x, fresh, at)
    c = None if challenger is None else challenger.score_one(x, fresh, at)
    return _finish(prepared, s, c, scorer, policy)


BatchResult = StepResult | ModelError


def step_batch(
    states: Mapping[str, PatientState | None],
    events: Sequence[dict],
    scorer: Any,
    policy: AlertPolicy = DEFAULT_POLICY,
    challenger: Any = None,
) -> list[BatchResult]:
    """``step`` over many patients' events in arrival order, one result per event.

    Exactly what calling ``step`` event by event gives (``score_many`` is bitwise
    ``score_one``), with a refused event's ``ModelError`` in its slot instead of
    raised: the others are not lost, and that patient's next event sees the
    state from before the refused one (as a caller of ``step`` that catches the
    error and keeps the old state). ``states`` is read, never written: each
    patient's state after the batch is the ``state`` of its last ``StepResult``.

    Processed in waves: wave k holds every patient's k-th event of the batch, so
    an event sees the state (open predictions, last alert) its predecessor left,
    and each wave costs one ``score_many`` (and one for the challenger). Events
    in time order over many patients make one or two waves per batch.
    """
    results: list[BatchResult | None] = [None] * len(events)
    current: dict[Any, PatientState | None] = {}
    for wave in _waves(events):
        pending: list[tuple[int, Any, _Pending]] = []
        for i in wave:
            pid = events[i].get("patient_id")
            state = current[pid] if pid in current else states.get(pid)
            try:
                prepared = _prepare(state, events[i], scorer.horizon_days)
            except ModelError as exc:
                results[i] = exc
                continue
            if isinstance(prepared, StepResult):
                results[i] = prepared
                current[pid] = prepared.state
            else:
                pending.append((i, pid, prepared))
        finished = _finish_many([p for _, _, p in pending], scorer, policy, challenger)
        for (i, pid, _), result in zip(pending, finished, strict=True):
            results[i] = result
            current[pid] = result.state
    return results  # type: ignore[return-value]  # every slot is filled by its wave


def _waves(events: Sequence[dict]) -> list[list[int]]:
    """Event indices grouped by occurrence: wave k holds each patient's k-th event."""
    seen: dict[Any, int] = {}
    waves: list[list[int]] = []
    for i, event in enumerate(events):
        k = seen.get(event.get("patient_id"), 0)
        seen[event.get("patient_id")] = k + 1
        if k == len(waves):
            waves.append([])
        waves[k].append(i)
    return waves


@dataclass(slots=True)
class _Pending:
    """An event whose state is applied and whose feature row waits for a score."""

    state: PatientState  # apply's fresh state, or the unchanged one for a replay
    event: dict
    at: int
    x: np.ndarray
    still_open: tuple = ()
    matured: tuple[MaturedOutcome, ...] = ()
    replay: bool = False


def _prepare(state: PatientState | None, event: dict, horizon_days: float) -> StepResult | _Pending:
    """Everything before the score: the transition, matured predictions, the row.
    A result that needs no score (duplicate, after the end, terminal) is final."""
    new_state, outcome = apply(state, event)
    at = event["event_time"]
    if outcome is Outcome.DUPLICATE:
        if new_state.last_event_hash == latest_key(event) and not new_state.ended:
            return _Pending(new_state, event, at, features(new_state, at), replay=True)
        return StepResult(new_state, outcome)
    if outcome is not Outcome.APPLIED:
        return StepResult(new_state, outcome)
    still_open, matured = mature(new_state.open_predictions, event["event_type"], at, horizon_days)
    if event["event_type"] in TERMINAL:
        set_open_predictions(new_state, still_open)
        return StepResult(new_state, outcome, matured=matured)
    x = features(new_state, at)  # features never read the open predictions
    return _Pending(new_state, event, at, x, still_open, matured)


def _finish_many(
    pending: list[_Pending], scorer: Any, policy: AlertPolicy, challenger: Any
) -> list[StepResult]:
    """One ``score_many`` for all rows (and one for the challenger), then each
    event's records and alert decision."""
    if not pending:
        return []
    X = np.vstack([p.x for p in pending])
    states = [p.state for p in pending]
    ats = [p.at for p in pending]
    scores = scorer.score_many(X, states, ats)
    shadows = [None] * len(pending) if challenger is None else challenger.score_many(X, states, ats)
    rows = zip(pending, scores, shadows, strict=True)
    return [_finish(p, s, c, scorer, policy) for p, s, c in rows]


def _finish(p: _Pending, s: Score, c: Score | None, scorer: Any, policy: AlertPolicy) -> StepResult:
    """The records, open predictions and alert of a scored event."""
    if p.replay:
        return _rebuild(p, s, c, scorer)
    new_state, at = p.state, p.at
    score = _score_record(new_state, p.event, s)
    open_now = record(p.still_open, (at, s.probability, TIER_RANK[s.tier], s.served_version))
    shadow = None
    if c is not None:
        shadow = _score_record(new_state, p.event, c)
        open_now = record(open_now, (at, c.probability, TIER_RANK[c.tier], c.served_version))
    # new_state is apply's fresh object for this event: its open predictions are set
    # in place (set_open_predictions), not copied with replace.
    set_open_predictions(new_state, open_now)
    decision = decide(new_state, s.tier, at, policy)
    alert, final = None, new_state
    if decision is not None:
        alert = _alert_record(score, s.tier, decision.previous_tier, p.x, scorer)
        final = with_alert(new_state, s.tier, at, latest_key(p.event))
    applied = Outcome.APPLIED
    return StepResult(final, applied, score, alert, shadow=shadow, matured=p.matured, features=p.x)


def _rebuild(p: _Pending, s: Score, c: Score | None, scorer: Any) -> StepResult:
    """The outputs the latest event produced, from the state it left behind."""
    state = p.state
    score = _score_record(state, p.event, s)
    alert = None
    if state.last_alert_event_hash == latest_key(p.event):
        alert = _alert_record(score, state.last_alert_tier, state.previous_alert_tier, p.x, scorer)
    shadow = None if c is None else _score_record(state, p.event, c)
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
