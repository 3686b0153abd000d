"""The dashboard's Redis projection and the page budget, on the real Redis."""

from __future__ import annotations

import uuid

import redis.asyncio as aioredis

from trialwatch.schemas.contract import MS_PER_DAY
from trialwatch.streams.budget import Budget
from trialwatch.streams.cache import RiskCache
from trialwatch.streams.dashstore import DashStore

T0 = 1_700_000_000_000


def _score(patient: str, tier: str, var: float, at: int, p: float = 0.5) -> dict:
    return {
        "patient_id": patient,
        "trial_id": "T1",
        "site_id": "S1",
        "event_id": f"{patient}-{at}",
        "event_type": "VISIT_MISSED",
        "event_time": at,
        "probability": p,
        "tier": tier,
        "clv": var * 2,
        "value_at_risk": var,
        "retention_days": [30],
        "retention": [0.9],
    }


def _alert(patient: str, alert_id: str, tier: str, at: int) -> dict:
    return {
        "alert_id": alert_id,
        "patient_id": patient,
        "trial_id": "T1",
        "site_id": "S1",
        "event_type": "VISIT_MISSED",
        "event_time": at,
        "tier": tier,
        "probability": 0.7,
        "reasons": [{"feature": "missed_visits", "text": "missed 2 visits"}],
        "recommended_action": "call today",
    }


async def _stores(redis_url: str) -> tuple[DashStore, RiskCache]:
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    return DashStore(aioredis.from_url(redis_url), prefix), RiskCache(redis_url, prefix=prefix)


async def _project(store: DashStore, cache: RiskCache, scores: list[dict]) -> None:
    for score in scores:
        store.put_score(score)
        cache.put_score(score)
    await cache.flush()
    await store.flush()


async def test_the_queue_ranks_at_risk_participants_by_value_at_risk(redis_url):
    store, cache = await _stores(redis_url)
    try:
        await _project(
            store,
            cache,
            [
                _score("p1", "HIGH", 100.0, T0),
                _score("p2", "CRITICAL", 900.0, T0 + 1),
                _score("p3", "LOW", 5000.0, T0 + 2),  # not at risk: not queued
                _score("p1", "HIGH", 300.0, T0 + 3),  # p1's newer score wins
            ],
        )
        queue = await store.queue("T1", "S1")
        assert [(r["patient_id"], r["value_at_risk"]) for r in queue] == [
            ("p2", 900.0),
            ("p1", 300.0),
        ]
        assert await store.trials() == ["T1"]
        [row] = await store.site_rows("T1")
        assert row["at_risk"] == {"HIGH": 1, "CRITICAL": 1}
        assert row["value_at_risk"] == 1200.0
        assert [p["event_time"] for p in await store.trajectory("p1")] == [T0, T0 + 3]
        assert (await store.freshness())["event_time"] == T0 + 3
    finally:
        await store.close()
        await cache.close()


async def test_projecting_the_same_scores_twice_changes_nothing(redis_url):
    store, cache = await _stores(redis_url)
    scores = [_score("p1", "HIGH", 100.0, T0), _score("p1", "CRITICAL", 400.0, T0 + 1)]
    try:
        await _project(store, cache, scores)
        first = (await store.queue("T1", "S1"), await store.trajectory("p1"))
        await _project(store, cache, scores)  # re-delivery, or a replayed history
        assert (await store.queue("T1", "S1"), await store.trajectory("p1")) == first
        assert len(first[1]) == 2
    finally:
        await store.close()
        await cache.close()


async def test_one_flush_of_many_sites_and_trials_keeps_each_queue_its_own(redis_url):
    store, cache = await _stores(redis_url)

    def at(score: dict, trial: str, site: str) -> dict:
        return {**score, "trial_id": trial, "site_id": site}

    try:
        await _project(
            store,
            cache,
            [
                at(_score("a1", "HIGH", 10.0, T0), "T1", "S1"),
                at(_score("a2", "CRITICAL", 20.0, T0), "T1", "S1"),
                at(_score("b1", "HIGH", 30.0, T0), "T1", "S2"),
                at(_score("c1", "CRITICAL", 40.0, T0), "T2", "S1"),
                at(_score("c2", "LOW", 50.0, T0), "T2", "S1"),
            ],
        )
        # a later flush: a2's risk falls, c2's rises, a1 gets two points at once
        await _project(
            store,
            cache,
            [
                at(_score("a2", "LOW", 20.0, T0 + 1), "T1", "S1"),
                at(_score("c2", "HIGH", 60.0, T0 + 1), "T2", "S1"),
                at(_score("a1", "HIGH", 11.0, T0 + 2), "T1", "S1"),
                at(_score("a1", "HIGH", 12.0, T0 + 3), "T1", "S1"),
            ],
        )

        def ids(queue: list[dict]) -> list[str]:
            return [r["patient_id"] for r in queue]

        assert ids(await store.queue("T1", "S1")) == ["a1"]
        assert ids(await store.queue("T1", "S2")) == ["b1"]
        assert ids(await store.queue("T2", "S1")) == ["c2", "c1"]
        assert await store.trials() == ["T1", "T2"]
        assert [r["site_id"] for r in await store.site_rows("T1")] == ["S1", "S2"]
        assert [p["event_time"] for p in await store.trajectory("a1")] == [T0, T0 + 2, T0 + 3]
    finally:
        await store.close()
        await cache.close()


async def test_an_ended_participant_leaves_the_queue(redis_url):
    store, cache = await _stores(redis_url)
    try:
        await _project(store, cache, [_score("p1", "HIGH", 100.0, T0)])
        store.put_ended("p1", "T1", "S1")
        await store.flush()
        assert await store.queue("T1", "S1") == []
        [row] = await store.site_rows("T1")
        assert row["at_risk"] == {"HIGH": 0, "CRITICAL": 0}
    finally:
        await store.close()
        await cache.close()


async def test_alerts_and_their_actions_show_in_the_queue_once(redis_url):
    store, cache = await _stores(redis_url)
    try:
        await _project(store, cache, [_score("p1", "HIGH", 100.0, T0)])
        alert = _alert("p1", "a1", "HIGH", T0)
        await store.record_alert(alert, paged=False)
        action = {"action_id": "x1", "alert_id": "a1", "action": "ACKNOWLEDGED",
                  "actor": "coordinator", "assignee": None, "at_wall_ms": 5}  # fmt: skip
        await store.record_action(action)
        await store.record_action(action)  # re-delivered: shown once
        [row] = await store.queue("T1", "S1")
        assert row["reasons"] == alert["reasons"]
        assert row["recommended_action"] == "call today"
        [shown] = row["alerts"]
        assert shown["paged"] is False
        assert [a["action"] for a in shown["actions"]] == ["ACKNOWLEDGED"]
    finally:
        await store.close()
        await cache.close()


async def test_the_budget_pages_critical_always_and_high_up_to_the_weekly_cap(redis_url):
    client = aioredis.from_url(redis_url)
    budget = Budget(client, f"test-{uuid.uuid4().hex[:8]}", per_site_week=2, ttl_s=600)
    week2 = T0 + 7 * MS_PER_DAY
    try:
        decisions = [await budget.pages(_alert("p", f"h{i}", "HIGH", T0 + i)) for i in range(4)]
        assert decisions == [True, True, False, False]
        assert await budget.pages(_alert("p", "c1", "CRITICAL", T0))
        # The same alert again (re-delivery) keeps its decision.
        assert await budget.pages(_alert("p", "h0", "HIGH", T0)) is True
        assert await budget.pages(_alert("p", "h3", "HIGH", T0 + 3)) is False
        # A new event-time week has its own budget.
        assert await budget.pages(_alert("p", "w2", "HIGH", week2))
    finally:
        await client.aclose()


async def test_without_a_budget_every_alert_pages(redis_url):
    client = aioredis.from_url(redis_url)
    budget = Budget(client, f"test-{uuid.uuid4().hex[:8]}", per_site_week=0, ttl_s=600)
    try:
        assert all([await budget.pages(_alert("p", f"h{i}", "HIGH", T0)) for i in range(5)])
    finally:
        await client.aclose()
