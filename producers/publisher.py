"""Publish visit events to Kafka: Avro single-object values, key = patient_id.

Used by ``trialwatch simulate`` and ``trialwatch replay``. Sends are pipelined
(no wait per message); ``pace`` decides when each event may leave: as fast as
possible, at a fixed rate, or at a compression of trial time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer

from trialwatch.schemas import codec as avro
from trialwatch.schemas.exceptions import TrialwatchError


@dataclass
class PublishReport:
    sent: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    rejected_examples: list[tuple[int, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def events_per_s(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    def reject(self, position: int, reason: str) -> None:
        key = reason.split(":", 1)[0]
        self.rejected[key] = self.rejected.get(key, 0) + 1
        if len(self.rejected_examples) < 20:
            self.rejected_examples.append((position, reason))


class Pacer:
    """Decides how long to wait before an event: by rate or by trial-time speed.

    ``speed`` = trial seconds per wall second (86400 = a trial day per second).
    """

    def __init__(self, rate: float | None = None, speed: float | None = None) -> None:
        self.rate = rate
        self.speed = speed
        self._t0 = time.monotonic()
        self._first_event_ms: int | None = None
        self._count = 0

    def delay(self, event_time_ms: int) -> float:
        self._count += 1
        now = time.monotonic() - self._t0
        if self.rate:
            return max(self._count / self.rate - now, 0.0)
        if self.speed:
            if self._first_event_ms is None:
                self._first_event_ms = event_time_ms
            due = (event_time_ms - self._first_event_ms) / 1000.0 / self.speed
            return max(due - now, 0.0)
        return 0.0


CHECK_EVERY = 20_000


async def _delivered(pending: list[asyncio.Future]) -> None:
    """Wait for the broker's acknowledgements: a failed send raises, never vanishes."""
    await asyncio.gather(*pending)
    pending.clear()


def new_producer(kafka_kwargs: dict) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        **kafka_kwargs,
        acks="all",
        linger_ms=10,
        max_batch_size=512 * 1024,
        enable_idempotence=True,
    )


async def publish(
    records: Iterable[tuple[int, dict | None, str | None]] | AsyncIterator,
    topic: str,
    kafka_kwargs: dict,
    *,
    pacer: Pacer | None = None,
    on_progress: Callable[[int], None] | None = None,
    stop: asyncio.Event | None = None,
) -> PublishReport:
    """Send ``(position, event, error)`` records; errors and contract violations are
    counted in the report with their position, never sent, never fatal."""
    report = PublishReport()
    pacer = pacer or Pacer()
    producer = new_producer(kafka_kwargs)
    pending: list[asyncio.Future] = []
    await producer.start()
    started = time.perf_counter()
    try:
        for position, event, error in records:
            if stop is not None and stop.is_set():
                break
            if error is not None or event is None:
                report.reject(position, error or "empty record")
                continue
            try:
                value = avro.encode(event)
            except TrialwatchError as exc:
                report.reject(position, f"{type(exc).__name__}: {exc}")
                continue
            wait = pacer.delay(event["event_time"])
            if wait > 0:
                await asyncio.sleep(wait)
            pending.append(
                await producer.send(topic, value=value, key=event["patient_id"].encode())
            )
            report.sent += 1
            if len(pending) >= CHECK_EVERY:
                await _delivered(pending)
            if on_progress is not None and report.sent % 1000 == 0:
                on_progress(1000)
        await _delivered(pending)
    finally:
        await producer.stop()
        report.seconds = time.perf_counter() - started
    if on_progress is not None:
        on_progress(report.sent % 1000)
    return report
