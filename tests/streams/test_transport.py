"""The worker's producer is idempotent: a retried produce request (a broker that
appended a batch but answered with an error) must not write an alert twice."""

from __future__ import annotations

from streams.app import app
from streams.transport import IdempotentProducer


async def test_every_producer_of_the_app_is_idempotent_with_acks_all():
    producer = app.transport.create_producer()
    assert isinstance(producer, IdempotentProducer)
    client = producer._new_producer()
    try:
        # aiokafka keeps a transaction manager exactly when idempotence is on (and
        # refuses to build one unless acks is "all")
        assert client._txn_manager is not None
    finally:
        await client.stop()
