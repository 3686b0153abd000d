"""The app runs with the two Faust overrides that reliability depends on.

Their behaviour is proven against the real broker in
``tests/integration/test_reliability.py`` (broker restart, two workers); these
tests guard the wiring, which a refactor of ``streams/app.py`` could drop silently.
"""

from __future__ import annotations

from trialwatch.streams.app import app
from trialwatch.streams.recovery import Recovery
from trialwatch.streams.transport import IdempotentProducer


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


def test_table_recovery_seeks_before_it_resumes_the_input_partitions():
    assert type(app.tables.recovery) is Recovery
