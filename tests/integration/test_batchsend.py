"""BatchSender on the real broker: records land where the producer's partitioner puts
their keys, in order, headers intact, and ``flush`` returns once all are stored."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaProducer

from tests.integration.worker import read_topic
from tests.kafka_util import create_topics
from trialwatch.streams.batchsend import BatchSender


async def _topics(bootstrap: str, *names: str, partitions: int = 4) -> list[str]:
    topics = [f"test-batch-{name}-{uuid.uuid4().hex[:8]}" for name in names]
    await create_topics(bootstrap, topics, partitions)
    return topics


async def test_records_land_in_their_keys_partitions_in_order(kafka_bootstrap):
    scores, deltas, control = await _topics(kafka_bootstrap, "scores", "deltas", "control")
    # a small batch size, so that one partition's records span several batches
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, max_batch_size=1024)
    await producer.start()
    try:
        sender = BatchSender(lambda: producer)
        sent = []
        for i in range(400):
            key = f"P{i % 37}".encode()
            value = f"{i:04d}".encode() * 10
            topic = scores if i % 3 else deltas
            headers = [("reason", b"bad_json")] if i % 50 == 0 else []
            sender.add(topic, key, value, headers)
            sent.append((topic, key, value, headers))
        assert len(sender) == 400
        await sender.flush()  # returns once the broker holds them all
        assert len(sender) == 0
        # where the producer's per-message send (Faust's path) puts each key
        expected_partition = {}
        for topic, key, _, _ in sent:
            if (topic, key) not in expected_partition:
                meta = await producer.send_and_wait(control, b"", key=key)
                expected_partition[(topic, key)] = meta.partition
    finally:
        await producer.stop()

    for topic in (scores, deltas):
        records = await read_topic(kafka_bootstrap, topic)
        mine = [(k, v, h) for t, k, v, h in sent if t == topic]
        assert len(records) == len(mine)
        for record in records:  # each key's partition is the partitioner's choice
            assert record.partition == expected_partition[(topic, record.key)]
        for partition in {r.partition for r in records}:  # and each keeps send order
            got = [(r.key, r.value, list(r.headers)) for r in records if r.partition == partition]
            want = [m for m in mine if expected_partition[(topic, m[0])] == partition]
            assert want == got


async def test_an_empty_flush_sends_nothing(kafka_bootstrap):
    [topic] = await _topics(kafka_bootstrap, "empty", partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await BatchSender(lambda: producer).flush()
    finally:
        await producer.stop()
    assert await read_topic(kafka_bootstrap, topic) == []
