"""Is an alert already on the alert topic? Asked only after a crashed claim.

An alert is claimed in Redis (``pending``), sent, acknowledged by the broker,
then marked ``sent``. A worker killed between the acknowledgement and the mark
leaves a ``pending`` claim for an alert that IS on the topic; re-sending it on
re-delivery would publish the same ``alert_id`` twice. The topic itself is the
truth, so before re-sending a pending alert we read the alert topic from the
claim's time (minus a slack for clock skew between workers) and look for the id.

Claims carry the claimant's wall-clock time because record timestamps on the
topic are producer wall-clock times (CreateTime): this is broker bookkeeping,
not event time, and decides nothing about features, windows or cooldowns.
Pending claims are rare (one per crash or hand-off per in-flight alert), so a
scan of a few seconds of a low-volume topic is cheap; the normal path never
reads the topic.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from trialwatch.schemas import codec
from trialwatch.schemas.exceptions import DecodeError

log = logging.getLogger(__name__)

CLOCK_SLACK_MS = 5 * 60_000
FETCH_TIMEOUT_MS = 500
SCAN_LIMIT_S = 30.0  # past this, answer "not found": a re-send beats a lost alert


class AlertLedger:
    def __init__(self, topic: str, kafka_kwargs: dict[str, Any]) -> None:
        self.topic = topic
        self._kafka_kwargs = kafka_kwargs
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            # Subscribed without a group: it is assigned every partition, no rebalances.
            consumer = AIOKafkaConsumer(
                self.topic, **self._kafka_kwargs, group_id=None, enable_auto_commit=False
            )
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    async def contains(self, alert_id: str, since_ms: int) -> bool:
        """True if a record with ``alert_id`` was written at or after ``since_ms``
        (minus the slack) on any partition of the alert topic."""
        async with self._lock:  # one consumer, one scan at a time
            consumer = await self._started()
            partitions = sorted(consumer.assignment())
            start_ms = max(since_ms - CLOCK_SLACK_MS, 0)
            starts = await consumer.offsets_for_times({tp: start_ms for tp in partitions})
            ends = await consumer.end_offsets(partitions)
            for tp in partitions:
                start = starts.get(tp)  # None: nothing written since then
                if start is None:
                    continue
                if await _scan(consumer, tp, start.offset, ends[tp], alert_id):
                    return True
            return False

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None


async def _scan(
    consumer: AIOKafkaConsumer, tp: TopicPartition, start: int, end: int, alert_id: str
) -> bool:
    consumer.seek(tp, start)
    deadline = asyncio.get_running_loop().time() + SCAN_LIMIT_S
    while await consumer.position(tp) < end:
        if asyncio.get_running_loop().time() > deadline:
            log.warning("alert ledger: scan of %s timed out; the alert may be re-sent", tp)
            return False
        batch = await consumer.getmany(tp, timeout_ms=FETCH_TIMEOUT_MS)
        for record in batch.get(tp, []):
            if record.offset >= end:
                return False
            if _alert_id(record.value) == alert_id:
                return True
    return False


def _alert_id(value: bytes | None) -> str | None:
    if value is None:
        return None
    try:
        return codec.decode(value, "RiskAlert")["alert_id"]
    except DecodeError:  # not ours to judge here; the topic should hold only alerts
        return None
