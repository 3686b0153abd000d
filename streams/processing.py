"""What the worker does with one consumed message, apart from Faust's wiring.

decode -> dedup + state update + score + alert decision (``models.pipeline.step``,
the same function the offline backfill calls) -> outputs -> state write.

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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from trialwatch.models.exceptions import ModelError
from trialwatch.models.kri import site_delta
from trialwatch.models.pipeline import step
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


class EventProcessor:
    """``model`` is the worker's ``ModelHolder`` (its snapshot is read once per
    event, so a hot swap lands between events) or a fixed ``Scorer``."""

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
        """Handle one message; return its outcome (one of ``models.pipeline.OUTCOME_LABELS``).

        ``position`` is the message's (partition, offset): it identifies the input
        event in what it matured, so a re-delivered copy is counted once.
        """
        started = time.perf_counter()
        metrics.EVENTS_IN.inc()
        outcome = await self._process(key, value, origin, position)
        metrics.OUTCOMES.labels(outcome).inc()
        metrics.SCORE_LATENCY.observe(time.perf_counter() - started)
        metrics.tick()
        return outcome

    async def _process(
        self, key: bytes | None, value: bytes, origin: str, position: tuple[int, int]
    ) -> str:
        try:
            event = avro.decode(value)
        except DecodeError as exc:
            return await self._dead_letter(key, value, exc.reason, str(exc), origin)
        patient_key = event["patient_id"].encode()
        if key is not None and key != patient_key:
            # Keyed to another patient: it sits in the wrong partition for its state.
            return await self._dead_letter(
                key, value, "key_mismatch", "Kafka key differs from patient_id", origin
            )
        serving = self.serving()  # once: the whole event is scored by one snapshot
        try:
            result = step(
                self.out.get_state(patient_key),
                event,
                serving.champion,
                self.policy,
                serving.challenger,
            )
        except ModelError as exc:
            return await self._dead_letter(key, value, exc.reason, str(exc), origin)
        except Exception as exc:  # a bug must not kill the worker or lose the event
            log.exception("internal error on %s", origin or "an event")
            return await self._dead_letter(key, value, "internal_error", type(exc).__name__, origin)

        if result.outcome is Outcome.DUPLICATE:
            if result.replayed:  # the latest event again: its outputs may have been lost
                await self.out.send_score(patient_key, result.score)
                if result.shadow is not None:
                    await self.out.send_shadow(patient_key, result.shadow)
                if result.alert is not None:
                    await self.emit_alert(patient_key, result.alert)
                await self._send_site_delta(result.state, event)
            return result.label
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
        self.out.set_state(patient_key, result.state)
        return result.label

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

    async def _dead_letter(
        self, key: bytes | None, value: bytes, reason: str, detail: str, origin: str
    ) -> str:
        headers = {"reason": reason, "detail": detail[:500], "origin": origin}
        await self.out.send_dead_letter(key, value, headers)
        metrics.DEAD_LETTERED.labels(reason).inc()
        log.info("dead-lettered a message from %s: %s", origin or "input", reason)
        return "dead_lettered"
