"""What the worker does with a batch of consumed messages, apart from Faust's wiring.

decode all -> dedup + state update + score + alert decision for all
(``models.pipeline.step_batch``, the function the offline backfill calls, with
one LightGBM call per wave) -> every output, in message order -> each touched
patient's last state, written once.

Order matters for at-least-once with idempotent effects (see also
``models.pipeline``: a re-delivered latest event re-sends its outputs):
1. outputs are sent BEFORE the new state is written to the table, so a crash in
   between re-processes the event on re-delivery (the state has not seen it)
   and re-sends the same outputs (scores are keyed by event_id; alert ids are
   deterministic and claimed in Redis), rather than skipping it as a duplicate;
2. an alert is claimed in Redis, awaited until the broker acknowledged it, then
   marked sent; a claim left pending by a crash is re-sent only if the alert
   topic does not hold it yet (``streams.ledger``).
Bad input never raises out of here: it goes to the DLQ with its bytes and reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from trialwatch.models.exceptions import ModelError
from trialwatch.models.kri import site_delta
from trialwatch.models.pipeline import StepResult, step, step_batch
from trialwatch.models.state import Outcome, PatientState
from trialwatch.schemas import codec as avro
from trialwatch.schemas.exceptions import DecodeError
from trialwatch.streams import metrics
from trialwatch.streams.cache import RiskCache
from trialwatch.streams.model import Serving
from trialwatch.streams.monitoring import DriftMonitor, outcome_batches

log = logging.getLogger(__name__)

SendFn = Callable[[bytes, Any], Awaitable[Any]]


async def _never_published(alert_id: str, since_ms: int) -> bool:
    return False


async def _nowhere(key: bytes, record: dict) -> None:
    return None


async def _all_delivered() -> None:
    return None


def _unshown(record: dict) -> None:
    return None


def _unshown_end(patient_id: str, trial_id: str, site_id: str) -> None:
    return None


@dataclass
class Outputs:
    """Where results go; the agent binds these to Faust topics and the table."""

    send_score: SendFn
    send_alert: Callable[[bytes, dict], Awaitable[None]]  # returns once acknowledged
    send_dead_letter: Callable[[bytes | None, bytes, dict[str, str]], Awaitable[Any]]
    get_state: Callable[[bytes], PatientState | None]
    set_state: Callable[[bytes, PatientState], None]
    # (alert_id, claimed at wall ms) -> is it already on the alert topic?
    alert_published: Callable[[str, int], Awaitable[bool]] = _never_published
    # matured predictions (a ModelOutcomes record) keyed by model version|trial
    send_outcomes: Callable[[bytes, dict], Awaitable[Any]] = _nowhere
    # the shadow challenger's score of an event (never alerts)
    send_shadow: Callable[[bytes, dict], Awaitable[Any]] = _nowhere
    # the event's effect on its site's KRIs (models.kri.site_delta), keyed trial|site
    send_site_delta: Callable[[bytes, dict], Awaitable[Any]] = _nowhere
    # the dashboard's projection (streams.dashstore): buffered, never awaited
    show_score: Callable[[dict], None] = _unshown
    show_end: Callable[[str, str, str], None] = _unshown_end
    # a batch's state writes at once: (key, state, the context of the patient's last
    # message); when None, ``set_state`` is called per patient
    set_states: Callable[[list[tuple[bytes, PatientState, Any]]], None] | None = None
    # returns once the broker acknowledged every send so far: awaited before the
    # state writes, so no state is durable ahead of its batch's outputs
    delivered: Callable[[], Awaitable[None]] = _all_delivered


@dataclass(frozen=True, slots=True)
class Message:
    """One consumed message. ``position`` is its (partition, offset): it identifies
    the input event in what it matured, so a re-delivered copy is counted once.
    ``context`` is the caller's own handle (the agent's Faust event), given back
    with the state writes so that the caller can write in the right partition."""

    key: bytes | None
    value: bytes
    origin: str = ""
    position: tuple[int, int] = (0, 0)
    context: Any = None


Refused = tuple[str, str]  # (reason, detail) of a message for the dead-letter topic


@dataclass(slots=True)
class _Decoded:
    key: bytes  # the patient's key (the Kafka key, checked against patient_id)
    event: dict


class EventProcessor:
    """``model`` is the worker's ``ModelHolder`` (its snapshot is read once per
    batch, so a hot swap lands between batches) or a fixed ``Scorer``."""

    def __init__(self, model: Any, cache: RiskCache, outputs: Outputs, policy: Any) -> None:
        if hasattr(model, "serving"):
            self.serving: Callable[[], Serving] = model.serving
        else:
            fixed = Serving(model)
            self.serving = lambda: fixed
        self.cache = cache
        self.out = outputs
        self.policy = policy
        champion = self.serving().champion if model is not None else None
        self.drift = DriftMonitor(getattr(champion, "drift_reference", None))

    async def process(
        self, key: bytes | None, value: bytes, origin: str = "", position: tuple[int, int] = (0, 0)
    ) -> str:
        """Handle one message: a batch of one."""
        return (await self.process_batch([Message(key, value, origin, position)]))[0]

    async def process_batch(self, messages: Sequence[Message]) -> list[str]:
        """Handle consumed messages in order; one outcome per message (one of
        ``models.pipeline.OUTCOME_LABELS``).

        Decode all, score all with one ``step_batch`` (one LightGBM call per
        wave), send every output in message order and await it, and only then
        write each touched patient's last state, once. A crash anywhere before
        the writes re-delivers the whole batch to a state that has not seen it.
        """
        started = time.perf_counter()
        metrics.EVENTS_IN.inc(len(messages))
        items = [self._decode(message) for message in messages]
        serving = self.serving()  # once: the whole batch is scored by one snapshot
        stepped = iter(self._step([i for i in items if isinstance(i, _Decoded)], serving))
        outcomes: list[str] = []
        writes: dict[bytes, tuple[PatientState, Any]] = {}
        for message, item in zip(messages, items, strict=True):
            result = next(stepped) if isinstance(item, _Decoded) else item
            if not isinstance(result, StepResult):
                reason, detail = result
                outcomes.append(await self._dead_letter(message, reason, detail))
                continue
            outcomes.append(result.label)
            await self._send(item, result, serving, message.position)
            if result.outcome is not Outcome.DUPLICATE:
                writes[item.key] = (result.state, message.context)
        await self.out.delivered()
        self._write(writes)
        for outcome in outcomes:
            metrics.OUTCOMES.labels(outcome).inc()
        metrics.SCORE_LATENCY.observe(time.perf_counter() - started)
        metrics.BATCH_SIZE.observe(len(messages))
        metrics.tick(len(messages))
        return outcomes

    def _decode(self, message: Message) -> _Decoded | Refused:
        """The message's event, or why it goes to the dead-letter topic."""
        try:
            event = avro.decode(message.value)
        except DecodeError as exc:
            return exc.reason, str(exc)
        patient_key = event["patient_id"].encode()
        if message.key is not None and message.key != patient_key:
            # Keyed to another patient: it sits in the wrong partition for its state.
            return "key_mismatch", "Kafka key differs from patient_id"
        return _Decoded(patient_key, event)

    def _step(self, decoded: list[_Decoded], serving: Serving) -> list[StepResult | Refused]:
        """``step_batch`` over the decoded events; a refused event's slot holds its
        (reason, detail). A bug in the batch step falls back to event-by-event
        steps, so that only the event that trips it is dead-lettered."""
        states: dict[str, PatientState | None] = {}
        for item in decoded:
            pid = item.event["patient_id"]
            if pid not in states:
                states[pid] = self.out.get_state(item.key)
        events = [item.event for item in decoded]
        champion, challenger = serving.champion, serving.challenger
        try:
            batch = step_batch(states, events, champion, self.policy, challenger)
        except Exception:
            log.exception("internal error in a batch of %d: stepping one by one", len(events))
            return self._step_each(states, events, serving)
        return [(r.reason, str(r)) if isinstance(r, ModelError) else r for r in batch]

    def _step_each(
        self, states: dict[str, PatientState | None], events: list[dict], serving: Serving
    ) -> list[StepResult | Refused]:
        current, results = dict(states), []
        for event in events:
            pid = event["patient_id"]
            try:
                result = step(
                    current[pid], event, serving.champion, self.policy, serving.challenger
                )
            except ModelError as exc:
                results.append((exc.reason, str(exc)))
                continue
            except Exception as exc:  # a bug must not kill the worker or lose the event
                log.exception("internal error on an event")
                results.append(("internal_error", type(exc).__name__))
                continue
            current[pid] = result.state
            results.append(result)
        return results

    async def _send(
        self, item: _Decoded, result: StepResult, serving: Serving, position: tuple[int, int]
    ) -> None:
        """Every output of one stepped event, in the order the guarantees need."""
        patient_key, event = item.key, item.event
        if result.outcome is Outcome.DUPLICATE:
            if result.replayed:  # the latest event again: its outputs may have been lost
                await self.out.send_score(patient_key, result.score)
                if result.shadow is not None:
                    await self.out.send_shadow(patient_key, result.shadow)
                if result.alert is not None:
                    await self.emit_alert(patient_key, result.alert)
                await self._send_site_delta(result.state, event)
            return
        if result.matured:
            for outcomes_key, batch in outcome_batches(
                result.state.trial_id, result.matured, *position
            ):
                await self.out.send_outcomes(outcomes_key, batch)
        if result.score is not None:
            await self.out.send_score(patient_key, result.score)
            self.cache.put_score(result.score)
            self.out.show_score(result.score)
            reference = serving.champion.drift_reference
            if reference is not self.drift.reference:  # a new champion: its own baseline
                self.drift = DriftMonitor(reference)
            self.drift.observe(
                result.state.trial_id,
                event["event_time"],
                result.features,
                result.score["probability"],
            )
        if result.shadow is not None:
            await self.out.send_shadow(patient_key, result.shadow)
        if result.alert is not None:
            await self.emit_alert(patient_key, result.alert)
        await self._send_site_delta(result.state, event)
        if result.state.ended:
            state = result.state
            self.out.show_end(state.patient_id, state.trial_id, state.site_id)

    def _write(self, writes: dict[bytes, tuple[PatientState, Any]]) -> None:
        """Each touched patient's last state, once per batch, after every output."""
        if not writes:
            return
        if self.out.set_states is not None:
            self.out.set_states([(key, state, context) for key, (state, context) in writes.items()])
            return
        for key, (state, _) in writes.items():
            self.out.set_state(key, state)

    async def _send_site_delta(self, state: PatientState, event: dict) -> None:
        """Re-sent with a replayed event too: the site book drops a delta it holds."""
        delta = site_delta(state, event)
        if delta is not None:
            await self.out.send_site_delta(f"{state.trial_id}|{state.site_id}".encode(), delta)

    async def emit_alert(self, patient_key: bytes, alert: dict) -> None:
        alert_id = alert["alert_id"]
        claim = await self.cache.claim_alert(alert_id)
        if not claim.send:
            metrics.ALERTS_SUPPRESSED.inc()
            return
        if claim.pending_since_ms is not None and await self.out.alert_published(
            alert_id, claim.pending_since_ms
        ):
            # A crashed worker sent it but died before marking it sent.
            log.info("alert %s is already on the alert topic: not re-sent", alert_id)
            await self.cache.mark_alert_sent(alert_id)
            metrics.ALERTS_SUPPRESSED.inc()
            return
        await self.out.send_alert(patient_key, alert)
        await self.cache.mark_alert_sent(alert_id)
        metrics.ALERTS.labels(alert["tier"]).inc()

    async def _dead_letter(self, message: Message, reason: str, detail: str) -> str:
        origin = message.origin
        headers = {"reason": reason, "detail": detail[:500], "origin": origin}
        await self.out.send_dead_letter(message.key, message.value, headers)
        metrics.DEAD_LETTERED.labels(reason).inc()
        log.info("dead-lettered a message from %s: %s", origin or "input", reason)
        return "dead_lettered"
