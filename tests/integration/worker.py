"""Run real trialwatch workers as subprocesses, each in its own namespace."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from trialwatch.schemas import codec as avro
from trialwatch.streams import settings as settings_module
from trialwatch.streams.workerproc import WorkerProcess, free_port


@dataclass
class Namespace:
    """Topics, app id and state dir of one test deployment."""

    bootstrap: str
    redis_url: str
    model_dir: Path
    root: Path
    partitions: int = 4
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "REDIS_URL": self.redis_url,
            "TRIALWATCH_TOPIC_PREFIX": f"t{self.run_id}.",
            "TRIALWATCH_APP_ID": f"tw-{self.run_id}",
            "TRIALWATCH_PARTITIONS": str(self.partitions),
            "TRIALWATCH_MODEL_DIR": str(self.model_dir),
            "TRIALWATCH_STANDBY_REPLICAS": "0",
            **extra,
        }

    @property
    def settings(self) -> settings_module.Settings:
        return settings_module.load(self.env())


class Worker(WorkerProcess):
    """A ``trialwatch worker`` of a test namespace, logging at info."""

    def __init__(self, ns: Namespace, name: str = "w1", **env: str) -> None:
        self.ns = ns
        port = free_port()
        self.data_dir = ns.root / f"data-{name}"
        super().__init__(
            ns.env(TRIALWATCH_WEB_PORT=str(port), TRIALWATCH_DATA_DIR=str(self.data_dir), **env),
            ns.root / f"worker-{name}.log",
            port=port,
            loglevel="info",
        )

    def start(self, wait: bool = True) -> Worker:
        super().start()
        if wait:
            self.wait_healthy()
        return self

    def outcomes(self) -> dict[str, int]:
        return self.get("/health")[1]["outcomes"]

    def wait_outcomes(self, total: int, timeout: float = 180.0) -> dict[str, int]:
        body = self.wait_for(
            lambda b: sum(b["outcomes"].values()) >= total,
            timeout=timeout,
            what=f"done with {total} events",
        )
        return body["outcomes"]


async def publish_events(bootstrap: str, topic: str, events: Iterable[dict]) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    await producer.start()
    n = 0
    try:
        for event in events:
            await producer.send(topic, value=avro.encode(event), key=event["patient_id"].encode())
            n += 1
        await producer.flush()
    finally:
        await producer.stop()
    return n


async def publish_raw(bootstrap: str, topic: str, messages: Iterable[tuple[bytes, bytes]]) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    await producer.start()
    n = 0
    try:
        for key, value in messages:
            await producer.send(topic, value=value, key=key)
            n += 1
        await producer.flush()
    finally:
        await producer.stop()
    return n


async def read_topic(bootstrap: str, topic: str, *, max_s: float = 60.0):
    """Every record of a topic, from the beginning up to its end offsets as they
    are when the read starts (so a slow broker cannot cut the read short)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    records = []
    try:
        partitions = await _partitions(bootstrap, topic)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        deadline = time.monotonic() + max_s
        unread = {tp for tp, end in ends.items() if end > 0}
        while unread:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: not read to its end offsets in {max_s}s")
            batch = await consumer.getmany(*unread, timeout_ms=300)
            for tp, part in batch.items():
                records.extend(r for r in part if r.offset < ends[tp])
            unread = {tp for tp in unread if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    return records


def scores_on_topic(ns: Namespace) -> dict[tuple[str, str], dict]:
    """The risk-scores topic by (patient_id, event_id). At-least-once may re-send a
    score; a re-sent copy must be the same score."""
    scores: dict[tuple[str, str], dict] = {}
    for record in asyncio.run(read_topic(ns.bootstrap, ns.settings.risk_scores_topic)):
        score = avro.decode(record.value, "RiskScore")
        assert scores.setdefault((score["patient_id"], score["event_id"]), score) == score
    return scores


async def _partitions(bootstrap: str, topic: str) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        for _ in range(50):
            (described,) = await admin.describe_topics([topic])
            if described["partitions"]:
                numbers = sorted(p["partition"] for p in described["partitions"])
                return [TopicPartition(topic, n) for n in numbers]
            await asyncio.sleep(0.1)
    finally:
        await admin.close()
    raise AssertionError(f"topic {topic} does not exist")


async def committed_lag(ns: Namespace, topic: str | None = None) -> int:
    """Input records the deployment's consumer group has not committed yet.

    Faust flushes its producer (outputs and changelog writes) before it commits,
    so 0 means every output of every input record is on the broker."""
    topic = topic or ns.settings.visit_events_topic
    consumer = AIOKafkaConsumer(
        bootstrap_servers=ns.bootstrap, group_id=f"tw-{ns.run_id}", enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = await _partitions(ns.bootstrap, topic)
        ends = await consumer.end_offsets(partitions)
        lag = 0
        for tp, end in ends.items():
            lag += max(end - (await consumer.committed(tp) or 0), 0)
        return lag
    finally:
        await consumer.stop()


def wait_settled(ns: Namespace, timeout: float = 120.0, topic: str | None = None) -> None:
    """Wait until the workers committed every record of ``topic`` (default: the input)."""
    deadline = time.monotonic() + timeout
    lag = -1
    while time.monotonic() < deadline:
        lag = asyncio.run(committed_lag(ns, topic))
        if lag == 0:
            return
        time.sleep(0.5)
    raise AssertionError(f"{lag} input records still uncommitted after {timeout}s")


PATIENT_ATTRIBUTES = ("distance_km", "age=", "'sex'", "epro_score", "ae_grade")


def assert_nothing_leaks(log: str, secrets: Iterable[str], events: Iterable[dict]) -> None:
    """The log-grep check of a worker's log (and whatever else it is given): it
    logged at info (so there was something to check), no secret, no patient id,
    no patient attribute."""
    assert "INFO" in log
    leaked = [s for s in secrets if s and s in log]
    assert not leaked, f"{len(leaked)} secret(s) in the log"
    patient_ids = {e["patient_id"] for e in events}
    assert not [p for p in patient_ids if p in log]
    for attribute in PATIENT_ATTRIBUTES:
        assert attribute not in log
