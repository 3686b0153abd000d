"""Process-wide objects of a worker: settings, the model, the Redis cache, the ledger.

Nothing here imports the Faust app: the app and every module on it take these.
"""

from __future__ import annotations

from functools import cache as _once

from trialwatch.streams import metrics
from trialwatch.streams import settings as settings_module
from trialwatch.streams.cache import RiskCache
from trialwatch.streams.control import ModelControl
from trialwatch.streams.dashstore import DashStore
from trialwatch.streams.ledger import AlertLedger
from trialwatch.streams.model import ModelHolder
from trialwatch.streams.security import aiokafka_kwargs, redis_kwargs, redis_refusal_line

settings = settings_module.load()
model = ModelHolder(settings.model_dir)


@_once
def cache() -> RiskCache:
    return RiskCache(
        settings.redis_url,
        prefix=f"{settings.app_id}",
        score_ttl_s=settings.score_cache_ttl_s,
        alert_ttl_s=settings.dedup_ttl_s,
        redis_kwargs=redis_kwargs(settings),
        describe=lambda exc: redis_refusal_line(exc, settings),
    )


@_once
def dashstore() -> DashStore:
    """The dashboard's projection: its own Redis connection (the cache's has a fallback
    mode; a dashboard without Redis shows that, it never shows stale local data)."""
    import redis.asyncio as aioredis

    kwargs = {"socket_timeout": 2.0, "socket_connect_timeout": 2.0, **redis_kwargs(settings)}
    client = aioredis.from_url(settings.redis_url, **kwargs)
    return DashStore(client, prefix=settings.app_id, ttl_s=settings.dedup_ttl_s)


@_once
def control() -> ModelControl:
    return ModelControl(settings, model)


@_once
def ledger() -> AlertLedger:
    return AlertLedger(settings.risk_alerts_topic, aiokafka_kwargs(settings))


# The newest offset this worker processed per (topic, partition), by its agents.
PROCESSED: dict[tuple[str, int], int] = {}


def caught_up(app, topics: tuple[str, ...]) -> bool:
    """Has this worker processed its partitions of ``topics`` to their high-water
    marks? (A partition not fetched from yet, high-water unknown, is not caught up.)"""
    consumer = app.consumer
    for tp in consumer.assignment():
        if tp.topic not in topics:
            continue
        highwater = consumer.highwater(tp)
        if highwater is None:
            return False
        if highwater > 0 and PROCESSED.get((tp.topic, tp.partition), -1) + 1 < highwater:
            return False
    return True


def update_lag_metrics(app) -> None:
    """Consumer lag per assigned partition = high-water mark - committed offset."""
    consumer = app.consumer
    for tp in consumer.assignment():
        highwater = consumer.highwater(tp)
        committed = (
            consumer._committed_offset.get(tp) if hasattr(consumer, "_committed_offset") else None
        )
        if highwater is None:
            continue
        lag = max(highwater - (committed or 0), 0)
        metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(lag)
