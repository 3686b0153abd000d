"""Create the worker's topics up front, with the configured partition count.

A topic auto-created by a producer gets the broker's default partition count,
which would not match the state table's changelog; so every entry point that
may be first (worker, simulate, replay, demo) calls ``ensure_topics``.
"""

from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaError,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
    for_code,
)

from trialwatch.streams.security import aiokafka_kwargs, authorization_line, start_or_exit
from trialwatch.streams.settings import Settings


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
        s.site_deltas_topic,
        s.site_kris_topic,
        s.site_alerts_topic,
        s.risk_pages_topic,
        s.alert_actions_topic,
    ]


def topic_configs(s: Settings, name: str) -> dict[str, str]:
    """Per-topic settings: model-metrics and model-control keep the latest record per key."""
    compacted = (s.model_metrics_topic, s.model_control_topic)
    return {"cleanup.policy": "compact"} if name in compacted else {}


def partitions_of(s: Settings, name: str) -> int:
    """model-control has one partition: its decisions are totally ordered."""
    return 1 if name == s.model_control_topic else s.partitions


async def ensure_topics(
    s: Settings, timeout_s: float = 30.0, group: str | None = None
) -> list[str]:
    """Create missing topics; return the names created. Existing ones are left alone.

    With ``group``, also ask for that consumer group's coordinator: a user without
    the group ACL is then told so in one line before a worker starts, instead of
    a consumer retrying forever. Every refusal is a SystemExit with one line.
    """
    admin = AIOKafkaAdminClient(**aiokafka_kwargs(s), request_timeout_ms=int(timeout_s * 1000))
    await start_or_exit(admin, s, timeout_s)
    created = []
    try:
        existing = set(await admin.list_topics())
        for name in topic_names(s):
            if name in existing:
                continue
            topic = NewTopic(
                name,
                num_partitions=partitions_of(s, name),
                replication_factor=s.replication,
                topic_configs=topic_configs(s, name),
            )
            response = await admin.create_topics([topic])
            for _, code, *_ in response.topic_errors:
                error = for_code(code)
                if code == 0 or error is TopicAlreadyExistsError:
                    continue
                if error is TopicAuthorizationFailedError:
                    raise SystemExit(
                        authorization_line(s, "Create", f"topic {name}", error.__name__)
                    )
                raise SystemExit(f"trialwatch: creating topic {name} failed: {error.__name__}")
            created.append(name)
        if group is not None:
            await _check_group(admin, s, group)
    finally:
        await admin.close()
    return created


async def _check_group(
    admin: AIOKafkaAdminClient, s: Settings, group: str, timeout_s: float = 15.0
) -> None:
    """Refused: one line. Not answered yet (a new cluster creates its offsets topic
    on the first request): asked again; still not, the consumer will find out."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            await admin.find_coordinator(group)
            return
        except GroupAuthorizationFailedError as exc:
            line = authorization_line(
                s, "Describe/Read", f"consumer group {group}", type(exc).__name__
            )
            raise SystemExit(line) from None
        except KafkaError as exc:
            if not exc.retriable or asyncio.get_running_loop().time() > deadline:
                return
            await asyncio.sleep(0.5)
