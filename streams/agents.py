"""The scoring agent: every visit event re-scores its patient.

Thin on purpose: Faust wiring only. Events are taken in micro-batches (up to
``TRIALWATCH_BATCH_MAX`` events or ``TRIALWATCH_BATCH_MS``); what happens to a
batch is in ``streams.processing``; the model logic is ``models.pipeline``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from faust.types import EventT

from trialwatch.models.state import PatientState
from trialwatch.schemas import codec as avro
from trialwatch.streams import runtime
from trialwatch.streams.app import app
from trialwatch.streams.batchsend import BatchSender
from trialwatch.streams.codecs import NAMES
from trialwatch.streams.eventcontext import writing_as
from trialwatch.streams.monitoring import fold, publish_gauges
from trialwatch.streams.processing import EventProcessor, Message, Outputs
from trialwatch.streams.recalibrator import AutoRecalibrator, publish_calibration
from trialwatch.streams.statecache import StateCache
from trialwatch.streams.tables import model_trial_to_outcomes, patient_to_state
from trialwatch.streams.topics import (
    dead_letter_topic,
    model_metrics_topic,
    model_outcomes_topic,
    risk_alerts_topic,
    risk_scores_topic,
    shadow_scores_topic,
    site_deltas_topic,
    visit_events_topic,
)


async def _send_alert(key: bytes, alert: dict) -> None:
    ack = await risk_alerts_topic.send(key=key, value=alert)
    await ack  # alerts are rare: wait for the broker before marking them sent


# A batch's scores, deltas, outcomes and dead letters: produce batches per
# partition through the producer Faust runs, awaited before the state writes.
OUTBOX = BatchSender(lambda: app.producer._producer)


def _sender(topic) -> Callable[[bytes, dict], Awaitable[None]]:
    """Encodes with the topic's own Avro record (its declared value serializer)."""
    name, record = topic.get_topic_name(), NAMES[topic.value_serializer]

    async def send(key: bytes, value: dict) -> None:
        OUTBOX.add(name, key, avro.encode(value, record))

    return send


async def _send_dead_letter(key: bytes | None, value: bytes, headers: dict[str, str]) -> None:
    encoded = [(k, v.encode()) for k, v in headers.items()]
    OUTBOX.add(dead_letter_topic.get_topic_name(), key, value, encoded)


# Decoded states in front of the patient table (streams.statecache).
STATES = StateCache(patient_to_state, runtime.settings.state_cache)


def _set_states(writes: list[tuple[bytes, PatientState, EventT]]) -> None:
    """A batch's writes: each in the partition of the patient's last event."""
    for key, state, event in writes:
        with writing_as(event):
            STATES.set(key, state)


def _message(event: EventT) -> Message:
    m = event.message
    return Message(
        event.key,
        event.value,
        f"{m.topic}[{m.partition}]@{m.offset}",
        (m.partition, m.offset),
        event,
    )


def build_processor() -> EventProcessor:
    outputs = Outputs(
        send_score=_sender(risk_scores_topic),
        send_alert=_send_alert,
        send_dead_letter=_send_dead_letter,
        get_state=STATES.get,
        set_state=STATES.set,  # unused: set_states writes in the right partition
        set_states=_set_states,
        alert_published=runtime.ledger().contains,
        send_outcomes=_sender(model_outcomes_topic),
        send_shadow=_sender(shadow_scores_topic),
        send_site_delta=_sender(site_deltas_topic),
        delivered=OUTBOX.flush,
        show_score=runtime.dashstore().put_score,
        show_end=runtime.dashstore().put_ended,
    )
    return EventProcessor(runtime.model, runtime.cache(), outputs, runtime.settings.alert_policy)


PROCESSOR: list[EventProcessor] = []  # the worker's one processor, for the drift timer


@app.task
async def follow_model_control() -> None:
    """Serve what the model-control topic says, from before the first event on."""
    control = runtime.control()
    await control.start()
    try:
        await control.follow()
    finally:
        await control.stop()


@app.agent(visit_events_topic)
async def score_visit_events(stream):
    await runtime.control().ready.wait()  # the champion of record, not just LATEST
    processor = build_processor()
    PROCESSOR[:] = [processor]
    batch_max, within = runtime.settings.batch_max, runtime.settings.batch_ms / 1000
    try:
        # noack_take: acked only once the batch's outputs are sent and its states
        # written (take() would ack as events enter the buffer: at-most-once).
        async for batch in stream.noack_take(batch_max, within=within):
            await processor.process_batch([_message(event) for event in batch])
            for event in batch:
                await stream.ack(event)
                message = event.message
                runtime.PROCESSED[(message.topic, message.partition)] = message.offset
    finally:
        await runtime.ledger().close()
        await runtime.dashstore().flush()


@app.task
async def flush_score_cache() -> None:
    """Write buffered latest scores to Redis in pipelines, off the per-event path."""
    cache, dashboard = runtime.cache(), runtime.dashstore()
    while not app.should_stop:
        await asyncio.sleep(0.2)
        await cache.flush()
        await dashboard.flush()


@app.timer(interval=5.0)
async def report_consumer_lag() -> None:
    runtime.update_lag_metrics(app)


CHANGED_WINDOWS: set[bytes] = set()  # keys counted into since the last publish
# Decoded windows of the partitions this worker owns: a table read decodes ~2 ms
# of Avro, so the counting agent reads here first; emptied on every rebalance.
WINDOWS: dict[bytes, object] = {}


@app.on_partitions_revoked.connect
async def _forget_windows_on_revoke(app, revoked, **kwargs) -> None:
    WINDOWS.clear()
    STATES.clear()


@app.on_partitions_assigned.connect
async def _forget_windows_on_assign(app, assigned, **kwargs) -> None:
    WINDOWS.clear()
    STATES.clear()


@app.agent(model_outcomes_topic)
async def count_matured_predictions(stream):
    """Fold matured predictions into their model version|trial window, once each."""
    async for event in stream.events():
        key, batch, message = event.key, event.value, event.message
        window = fold(_window(key), batch)
        if window is not None:  # None: a re-delivered batch, counted already
            model_trial_to_outcomes[key] = window
            WINDOWS[key] = window
            CHANGED_WINDOWS.add(key)
        runtime.PROCESSED[(message.topic, message.partition)] = message.offset


async def _publish_calibration(cal) -> None:
    await publish_calibration(runtime.settings, cal, app.conf.id)


RECALIBRATOR = AutoRecalibrator(
    runtime.model,
    _publish_calibration,
    lambda: runtime.caught_up(
        app, (runtime.settings.visit_events_topic, runtime.settings.model_outcomes_topic)
    ),
)


@app.timer(interval=2.0)
async def publish_model_metrics() -> None:
    """Metrics of the windows that changed, every 2 s rather than per batch: the
    counts are durable in the table; the topic and gauges only show them."""
    changed = set(CHANGED_WINDOWS)
    CHANGED_WINDOWS.clear()
    for key in changed:
        window = _window(key)
        if window is None:  # its partition moved to another worker
            continue
        record = window.metrics_record()
        await model_metrics_topic.send(key=key, value=record)
        publish_gauges(record)
    if runtime.settings.auto_recalibrate:
        await RECALIBRATOR.tick(changed, _window)


def _window(key: bytes):
    return WINDOWS.get(key) or model_trial_to_outcomes.get(key)


@app.timer(interval=10.0)
async def report_drift() -> None:
    for processor in PROCESSOR:
        processor.drift.publish()
