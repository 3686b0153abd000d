"""A Faust worker with one agent and one RocksDB-backed table on the real broker."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tests.kafka_util import create_topics

APP = Path(__file__).parent / "apps" / "counter_app.py"


async def test_agent_updates_a_table_on_the_real_broker(kafka_bootstrap, name_factory, tmp_path):
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "COUNTER_APP_ID": name_factory("counter"),
        "COUNTER_IN": name_factory("counter-in"),
        "COUNTER_OUT": name_factory("counter-out"),
        "COUNTER_DATA_DIR": str(tmp_path / "data"),
    }
    await create_topics(kafka_bootstrap, [env["COUNTER_IN"], env["COUNTER_OUT"]], partitions=2)
    log = open(tmp_path / "worker.log", "wb")
    worker = subprocess.Popen(
        [sys.executable, str(APP), "worker", "-l", "warn", "--without-web"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            for i in range(30):
                key = f"p{i % 3}".encode()
                # faust's str serializer on the wire is plain UTF-8 ("raw" for str keys).
                await producer.send(env["COUNTER_IN"], key=key, value=b'"x"')
            await producer.flush()
        finally:
            await producer.stop()

        consumer = AIOKafkaConsumer(
            env["COUNTER_OUT"],
            bootstrap_servers=kafka_bootstrap,
            group_id=name_factory("reader"),
            auto_offset_reset="earliest",
        )
        await consumer.start()
        latest: dict[bytes, bytes] = {}
        try:
            async with asyncio.timeout(120):
                while latest != {b"p0": b'"10"', b"p1": b'"10"', b"p2": b'"10"'}:
                    worker_log = (tmp_path / "worker.log").read_text()
                    assert worker.poll() is None, worker_log
                    assert "Crashed" not in worker_log, worker_log
                    batch = await consumer.getmany(timeout_ms=500)
                    for records in batch.values():
                        for record in records:
                            latest[record.key] = record.value
        finally:
            await consumer.stop()
        assert any((tmp_path / "data").rglob("*")), "the RocksDB store wrote nothing"
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()
