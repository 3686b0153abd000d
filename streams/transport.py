"""Faust's Kafka transport, with an idempotent producer.

Why: aiokafka retries a produce request whose answer it did not get. A broker
that is shutting down can append a batch and still answer
``NotLeaderForPartitionError``; the retry then writes the same records again,
and an alert lands twice on the alert topic (seen in the broker-restart test).
With idempotence the broker recognises the retried batch by producer id and
sequence number and drops it. Faust turns idempotence on only inside
exactly-once transactions, so the worker asks for it here; it needs
``acks=all``, which is Faust's default anyway.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka


class IdempotentProducer(faust_aiokafka.Producer):
    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}


class Transport(faust_aiokafka.Transport):
    Producer = IdempotentProducer
