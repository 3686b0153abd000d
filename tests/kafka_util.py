"""Small Kafka helpers shared by the integration tests."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic


async def create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    """Create topics up front, as an operator would: a producer that auto-creates
    a topic gets the broker's default partition count, which a Faust table's
    changelog would then not match."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in names]
        )
    finally:
        await admin.close()
