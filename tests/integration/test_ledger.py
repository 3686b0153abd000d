"""A crash between an alert's broker ack and its ``sent`` mark must not duplicate it.

The real broker and Redis: the alert topic is the truth the ledger reads.
"""

from __future__ import annotations

import time
import uuid

from tests.integration.worker import publish_raw, read_topic
from tests.kafka_util import create_topics
from tests.schemas.factories import alert_factory
from trialwatch.schemas import codec
from trialwatch.streams.cache import Claim, RiskCache
from trialwatch.streams.ledger import CLOCK_SLACK_MS, AlertLedger
from trialwatch.streams.processing import EventProcessor, Outputs


def _now_ms() -> int:
    return int(time.time() * 1000)


async def _fresh_topic(bootstrap: str, partitions: int = 3) -> str:
    topic = f"test-alerts-{uuid.uuid4().hex[:8]}"
    await create_topics(bootstrap, [topic], partitions)
    return topic


async def test_ledger_finds_an_alert_written_since_the_claim(kafka_bootstrap):
    topic = await _fresh_topic(kafka_bootstrap)
    ledger = AlertLedger(topic, {"bootstrap_servers": kafka_bootstrap})
    try:
        assert await ledger.contains("a-1", _now_ms()) is False  # empty topic
        claimed_at = _now_ms()
        alerts = [alert_factory(alert_id=f"a-{i}", patient_id=f"P{i}") for i in range(20)]
        await publish_raw(
            kafka_bootstrap,
            topic,
            [(a["patient_id"].encode(), codec.encode(a, "RiskAlert")) for a in alerts],
        )
        assert await ledger.contains("a-7", claimed_at) is True
        assert await ledger.contains("a-19", claimed_at) is True
        assert await ledger.contains("a-20", claimed_at) is False  # never sent
        # Written before the claim (beyond the clock slack): not this claim's alert.
        later = _now_ms() + CLOCK_SLACK_MS + 60_000
        assert await ledger.contains("a-7", later) is False
    finally:
        await ledger.close()


async def test_a_pending_claim_resends_only_what_the_topic_lacks(kafka_bootstrap, redis_url):
    """What a worker killed mid-alert leaves behind, and what its successor does."""
    topic = await _fresh_topic(kafka_bootstrap)
    ledger = AlertLedger(topic, {"bootstrap_servers": kafka_bootstrap})
    cache = RiskCache(redis_url, prefix=f"test-{uuid.uuid4().hex[:8]}")
    sent: list[str] = []

    async def send_alert(key: bytes, alert: dict) -> None:
        sent.append(alert["alert_id"])
        await publish_raw(kafka_bootstrap, topic, [(key, codec.encode(alert, "RiskAlert"))])

    async def unused(*args):
        raise AssertionError("not used here")

    outputs = Outputs(
        send_score=unused, send_alert=send_alert, send_dead_letter=unused,
        get_state=unused, set_state=unused, alert_published=ledger.contains,
    )  # fmt: skip
    processor = EventProcessor(model=None, cache=cache, outputs=outputs, policy=None)
    delivered = alert_factory(alert_id=f"delivered-{uuid.uuid4().hex[:6]}")
    lost = alert_factory(alert_id=f"lost-{uuid.uuid4().hex[:6]}")
    try:
        # The crashed worker: claimed both, one reached the broker, neither was marked sent.
        for alert in (delivered, lost):
            assert await cache.claim_alert(alert["alert_id"]) == Claim(send=True)
        await publish_raw(
            kafka_bootstrap, topic, [(b"P-000123", codec.encode(delivered, "RiskAlert"))]
        )

        # The successor re-processes both events.
        await processor.emit_alert(b"P-000123", delivered)
        await processor.emit_alert(b"P-000123", lost)
        await processor.emit_alert(b"P-000123", lost)  # and a third delivery

        assert sent == [lost["alert_id"]]
        on_topic = [codec.decode(r.value, "RiskAlert")["alert_id"] for r in
                    await read_topic(kafka_bootstrap, topic)]  # fmt: skip
        assert sorted(on_topic) == sorted([delivered["alert_id"], lost["alert_id"]])
        for alert in (delivered, lost):  # both settled: nobody checks the topic again
            assert await cache.claim_alert(alert["alert_id"]) == Claim(send=False)
    finally:
        await ledger.close()
        await cache.close()
