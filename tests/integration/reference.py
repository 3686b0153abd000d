"""What an uninterrupted run must produce, computed without Kafka.

The same ``EventProcessor`` the worker runs, driven in-process over the same
messages with in-memory outputs (a test driver for the topology, as Kafka
Streams' TopologyTestDriver): exact outcome counts, scores, alerts and states.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from dataclasses import dataclass, field

from trialwatch.models.alerts import AlertPolicy
from trialwatch.models.scorer import Scorer
from trialwatch.models.state import PatientState, decode_state
from trialwatch.streams.cache import RiskCache
from trialwatch.streams.processing import EventProcessor, Outputs


@dataclass
class Expected:
    outcomes: Counter = field(default_factory=Counter)
    scores: dict[tuple[str, str], dict] = field(default_factory=dict)  # (patient, event) ->
    alerts: dict[str, dict] = field(default_factory=dict)  # alert_id -> alert
    states: dict[bytes, PatientState] = field(default_factory=dict)
    dead: list[tuple[bytes, str]] = field(default_factory=list)  # (value, reason)


def expected_outputs(
    messages: list[tuple[bytes | None, bytes]], model_dir, redis_url: str, cooldown_days: float
) -> Expected:
    return asyncio.run(_drive(messages, model_dir, redis_url, cooldown_days))


async def _drive(messages, model_dir, redis_url, cooldown_days) -> Expected:
    out = Expected()

    async def send_score(key, score):
        out.scores[score["patient_id"], score["event_id"]] = score

    async def send_alert(key, alert):
        out.alerts[alert["alert_id"]] = alert

    async def send_dead(key, value, headers):
        out.dead.append((value, headers["reason"]))

    outputs = Outputs(
        send_score=send_score,
        send_alert=send_alert,
        send_dead_letter=send_dead,
        get_state=out.states.get,
        set_state=out.states.__setitem__,
    )
    cache = RiskCache(redis_url, prefix=f"reference-{uuid.uuid4().hex[:8]}")
    processor = EventProcessor(
        Scorer.load(model_dir), cache, outputs, AlertPolicy(cooldown_days=cooldown_days)
    )
    for key, value in messages:
        out.outcomes[await processor.process(key, value)] += 1
    await cache.close()
    return out


def final_states(changelog_records) -> dict[bytes, PatientState]:
    """The latest value per key of a state changelog (what a restoring worker reads)."""
    latest = {}
    for record in changelog_records:
        latest[record.key] = record.value
    return {key: decode_state(value) for key, value in latest.items() if value is not None}
