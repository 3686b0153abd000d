"""A batch's outputs as aiokafka produce batches: one per topic partition, awaited together.

Why not ``Topic.send``: Faust's send path costs tens of µs a message (a
FutureMessage, the codec registry, callbacks, then aiokafka's own per-message
send with its future), and the scoring agent sends two or three messages per
event. Here a batch's records are appended to one aiokafka ``BatchBuilder`` per
partition, in message order, submitted with ``send_batch`` and awaited together.

Each record's partition is the one the producer's own partitioner gives its key
(murmur2, as Faust's sends and Kafka's Java clients use), so keys land where
they always did. Records go through the producer Faust runs (idempotent, the
same connection), so nothing about delivery changes: the caller awaits
``flush`` before its state writes, as it awaited each send's acknowledgement.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

Headers = list[tuple[str, bytes]]


class BatchSender:
    """Buffers ``(topic, key, value, headers)`` records; ``flush`` produces them."""

    def __init__(self, producer: Callable[[], Any]) -> None:
        # a callable: the aiokafka producer exists only once Faust started it
        self._producer = producer
        self._records: list[tuple[str, bytes | None, bytes, Headers]] = []

    def __len__(self) -> int:
        return len(self._records)

    def add(
        self, topic: str, key: bytes | None, value: bytes, headers: Headers | None = None
    ) -> None:
        self._records.append((topic, key, value, headers or []))

    async def flush(self) -> None:
        """Produce every buffered record and return once the broker acknowledged
        all of them (raises what the producer raises; the records are then dropped
        from the buffer, and the caller's batch is re-delivered as a whole)."""
        records, self._records = self._records, []
        if not records:
            return
        producer = self._producer()
        groups: dict[tuple[str, int], list[tuple[bytes | None, bytes, Headers]]] = {}
        for topic in {topic for topic, *_ in records}:
            await producer.client._wait_on_metadata(topic)  # once per topic, not per record
        for topic, key, value, headers in records:
            partition = producer._partition(topic, None, key, value, key, value)
            groups.setdefault((topic, partition), []).append((key, value, headers))
        futures = []
        for (topic, partition), rows in groups.items():
            batch = producer.create_batch()
            for key, value, headers in rows:
                if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                    # full: send it; a batch's first record always fits (aiokafka)
                    futures.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None, headers=headers)
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*futures)
