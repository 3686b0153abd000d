"""RiskCache on the real Redis, and its fallback when Redis is unreachable."""

from __future__ import annotations

import uuid

from trialwatch.streams import metrics
from trialwatch.streams.cache import Claim, RiskCache
from trialwatch.streams.workerproc import free_port


def _score(patient_id: str, p: float) -> dict:
    return {
        "patient_id": patient_id,
        "event_id": f"{patient_id}-e",
        "probability": p,
        "tier": "LOW",
    }


async def test_alert_claims_are_idempotent_across_cache_instances(redis_url):
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    first, second = RiskCache(redis_url, prefix=prefix), RiskCache(redis_url, prefix=prefix)
    try:
        assert await first.claim_alert("a1", now_ms=1_000) == Claim(send=True)
        # A claim never marked sent (the claimant crashed) may be retried, and
        # says since when it was pending (where the ledger starts looking)...
        retry = await second.claim_alert("a1", now_ms=9_000)
        assert retry == Claim(send=True, pending_since_ms=1_000)
        await second.mark_alert_sent("a1")
        # ...but once sent, nobody sends it again, not even a fresh worker.
        assert await first.claim_alert("a1") == Claim(send=False)
        assert await RiskCache(redis_url, prefix=prefix).claim_alert("a1") == Claim(send=False)
        assert not first.degraded
    finally:
        await first.close()
        await second.close()


async def test_latest_scores_are_flushed_as_hashes_with_ttl(redis_url):
    cache = RiskCache(redis_url, prefix=f"test-{uuid.uuid4().hex[:8]}", score_ttl_s=60)
    try:
        cache.put_score(_score("p1", 0.1))
        cache.put_score(_score("p1", 0.7))  # newer wins before the flush
        cache.put_score(_score("p2", 0.2))
        assert await cache.flush() == 2
        assert (await cache.latest_score("p1"))["probability"] == 0.7
        ttl = await cache._client.ttl(cache._score_key("p1"))
        assert 0 < ttl <= 60
    finally:
        await cache.close()


async def test_unreachable_redis_degrades_without_losing_anything():
    before = metrics.REDIS_FALLBACK._value.get()
    cache = RiskCache(f"redis://127.0.0.1:{free_port()}/0", prefix="down")
    assert await cache.ping() is False
    assert cache.degraded and "redis unreachable" in cache.degraded_reason
    assert await cache.claim_alert("a1") == Claim(send=True)
    await cache.mark_alert_sent("a1")
    assert await cache.claim_alert("a1") == Claim(send=False)  # remembered in-process
    cache.put_score(_score("p1", 0.4))
    assert await cache.flush() == 0  # kept for later, not dropped
    assert (await cache.latest_score("p1"))["probability"] == 0.4
    assert metrics.REDIS_FALLBACK._value.get() > before
    await cache._client.aclose()
