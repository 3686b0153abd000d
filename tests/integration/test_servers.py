"""The dev stack's servers do what the rest of trialwatch relies on."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tests.kafka_util import create_topics


async def test_produce_consume_round_trip_on_a_fresh_topic(kafka_bootstrap, name_factory):
    topic = name_factory("roundtrip")
    await create_topics(kafka_bootstrap, [topic], partitions=3)

    sent = {f"patient-{i}".encode(): f"event-{i}".encode() for i in range(50)}
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in sent.items():
            await producer.send(topic, value=value, key=key)
        await producer.flush()
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=name_factory("group"),
        auto_offset_reset="earliest",
    )
    await consumer.start()
    received: dict[bytes, bytes] = {}
    partitions_by_key: dict[bytes, int] = {}
    try:
        async with asyncio.timeout(30):
            while len(received) < len(sent):
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    for record in records:
                        received[record.key] = record.value
                        partitions_by_key[record.key] = record.partition
    finally:
        await consumer.stop()
    assert received == sent
    assert len(set(partitions_by_key.values())) > 1, "keys should spread over partitions"


async def test_redis_set_nx_and_ttl(redis_url, name_factory):
    client = aioredis.from_url(redis_url)
    key = name_factory("alert")
    try:
        assert await client.set(key, "1", nx=True, px=1500) is True
        assert await client.set(key, "2", nx=True, px=1500) is None  # second writer loses
        assert await client.get(key) == b"1"
        ttl = await client.pttl(key)
        assert 0 < ttl <= 1500
        await asyncio.sleep(1.7)
        assert await client.get(key) is None  # expired by TTL
        assert await client.set(key, "3", nx=True, px=1500) is True
    finally:
        await client.delete(key)
        await client.aclose()
