"""Create the worker's topics up front, with the configured partition count.

A topic auto-created by a producer gets the broker's default partition count,
which would not match the state table's changelog; so every entry point that
may be first (worker, simulate, replay, demo) calls ``ensure_topics``.
"""

from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from trialwatch.streams.settings import Settings, aiokafka_kwargs


def topic_names(s: Settings) -> list[str]:
    return [
        s.visit_events_topic,
        s.risk_scores_topic,
        s.risk_alerts_topic,
        s.dlq_topic,
        s.model_outcomes_topic,
        s.model_metrics_topic,
        s.shadow_scores_topic,
        s.model_control_topic,
    ]


def topic_configs(s: Settings, name: str) -> dict[str, str]:
    """Per-topic settings: model-metrics and model-control keep the latest record per key."""
    compacted = (s.model_metrics_topic, s.model_control_topic)
    return {"cleanup.policy": "compact"} if name in compacted else {}


def partitions_of(s: Settings, name: str) -> int:
    """model-control has one partition: its decisions are totally ordered."""
    return 1 if name == s.model_control_topic else s.partitions


async def ensure_topics(s: Settings, timeout_s: float = 30.0) -> list[str]:
    """Create missing topics; return the names created. Existing ones are left alone."""
    admin = AIOKafkaAdminClient(**aiokafka_kwargs(s), request_timeout_ms=int(timeout_s * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
    except (KafkaConnectionError, TimeoutError, OSError) as exc:
        await admin.close()
        raise SystemExit(
            f"trialwatch: cannot reach Kafka at {s.kafka_bootstrap_servers} ({exc}). "
            "Start the dev stack with `make up`, or set KAFKA_BOOTSTRAP_SERVERS."
        ) from None
    created = []
    try:
        existing = set(await admin.list_topics())
        for name in topic_names(s):
            if name in existing:
                continue
            try:
                await admin.create_topics(
                    [
                        NewTopic(
                            name,
                            num_partitions=partitions_of(s, name),
                            replication_factor=s.replication,
                            topic_configs=topic_configs(s, name),
                        )
                    ]
                )
                created.append(name)
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()
    return created
