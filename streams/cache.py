"""Redis: the latest-prediction cache and alert-id idempotency, with a fallback.

If Redis is unreachable, scoring goes on: alert ids are remembered in a bounded
in-process map, scores in a bounded in-process cache, ``degraded`` is set with
the reason, a metric counts it, and the next attempt after a short back-off
reconnects by itself. Writes of the latest score are buffered and flushed in
one pipeline per interval, so the per-event path never waits on Redis.

Alert emission uses a two-step claim so a crash cannot both lose and duplicate:
``SET alert:<id> pending:<wall ms> NX`` before sending, ``SET alert:<id> sent``
after the broker acknowledged it. A re-delivered event whose alert is ``sent`` is
not sent again; one whose alert is ``pending`` (the worker died between claim
and mark) is sent again unless the alert topic already holds it
(``streams.ledger``).
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from trialwatch.streams import metrics

log = logging.getLogger(__name__)

FALLBACK_MAX_KEYS = 200_000
RETRY_AFTER_S = 1.0


class _Bounded(OrderedDict):
    """An LRU-bounded dict: the fallback must not grow without limit."""

    def __init__(self, max_keys: int) -> None:
        super().__init__()
        self.max_keys = max_keys

    def put(self, key: str, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.max_keys:
            self.popitem(last=False)


@dataclass(frozen=True)
class Claim:
    send: bool
    pending_since_ms: int | None = None


def _claim_from(value: bytes | None) -> Claim:
    """Read a stored claim: ``sent`` or ``pending:<wall ms>`` (a bare ``pending``,
    written by older workers, has no time: the whole topic must be checked)."""
    if value == b"sent":
        return Claim(send=False)
    if value is None:  # expired between SET NX and GET: treat as a fresh claim
        return Claim(send=True)
    _, _, since = value.partition(b":")
    return Claim(send=True, pending_since_ms=int(since) if since.isdigit() else 0)


class RiskCache:
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "trialwatch",
        score_ttl_s: int = 7 * 86_400,
        alert_ttl_s: int = 30 * 86_400,
        redis_kwargs: dict[str, Any] | None = None,
        describe: Callable[[BaseException], str] | None = None,
    ) -> None:
        kwargs: dict[str, Any] = {"socket_timeout": 1.0, "socket_connect_timeout": 1.0}
        self._client = aioredis.from_url(url, **kwargs, **(redis_kwargs or {}))
        # What a failure means, in words that name the setting and never the password.
        self._describe = describe or (lambda exc: f"Redis unreachable ({type(exc).__name__})")
        self.prefix = prefix
        self.score_ttl_s = score_ttl_s
        self.alert_ttl_s = alert_ttl_s
        self.degraded_reason: str | None = None
        self._retry_at = 0.0
        self._pending_scores: dict[str, dict] = {}
        self._fallback_scores = _Bounded(FALLBACK_MAX_KEYS)
        self._fallback_alerts = _Bounded(FALLBACK_MAX_KEYS)
        metrics.REDIS_UP.set(1)

    # ----------------------------------------------------------- availability
    @property
    def degraded(self) -> bool:
        return self.degraded_reason is not None

    def _available(self) -> bool:
        return not self.degraded or time.monotonic() >= self._retry_at

    def _failed(self, exc: Exception) -> None:
        if not self.degraded:
            log.warning("%s: using the in-process fallback", self._describe(exc))
        self.degraded_reason = f"redis unreachable: {type(exc).__name__}"
        self._retry_at = time.monotonic() + RETRY_AFTER_S
        metrics.REDIS_UP.set(0)
        metrics.REDIS_FALLBACK.inc()

    def _ok(self) -> None:
        if self.degraded:
            log.info("Redis is back: leaving degraded mode")
        self.degraded_reason = None
        metrics.REDIS_UP.set(1)

    async def ping(self) -> bool:
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return False
        self._ok()
        return True

    # ------------------------------------------------------------- alert ids
    def _alert_key(self, alert_id: str) -> str:
        return f"{self.prefix}:alert:{alert_id}"

    async def claim_alert(self, alert_id: str, now_ms: int | None = None) -> Claim:
        """Whether this worker should send the alert.

        ``Claim(send=False)``: already sent. ``Claim(send=True)``: never claimed,
        claimed now. ``Claim(send=True, pending_since_ms=t)``: an earlier claimant
        (a crashed worker) claimed it at wall time ``t`` but never confirmed; the
        alert may or may not be on the topic (see ``streams.ledger``).
        """
        local = self._fallback_alerts.get(alert_id)
        if local == "sent":
            return Claim(send=False)
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        if self._available():
            key = self._alert_key(alert_id)
            try:
                if await self._client.set(key, f"pending:{now_ms}", nx=True, ex=self.alert_ttl_s):
                    self._ok()
                    return Claim(send=True)
                state = await self._client.get(key)
                self._ok()
                return _claim_from(state)
            except (RedisError, OSError) as exc:
                self._failed(exc)
        metrics.REDIS_FALLBACK.inc()
        return Claim(send=True)

    async def mark_alert_sent(self, alert_id: str) -> None:
        self._fallback_alerts.put(alert_id, "sent")
        if self._available():
            try:
                await self._client.set(self._alert_key(alert_id), "sent", ex=self.alert_ttl_s)
                self._ok()
            except (RedisError, OSError) as exc:
                self._failed(exc)

    # ---------------------------------------------------------- latest score
    def _score_key(self, patient_id: str) -> str:
        return f"{self.prefix}:score:{patient_id}"

    def put_score(self, score: dict) -> None:
        """Buffer the latest score of a patient; ``flush`` writes it (non-blocking here)."""
        self._pending_scores[score["patient_id"]] = score
        self._fallback_scores.put(score["patient_id"], score)

    async def flush(self) -> int:
        """Write buffered scores as hashes with a TTL, in one pipeline."""
        if not self._pending_scores or not self._available():
            return 0
        batch, self._pending_scores = self._pending_scores, {}
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for patient_id, score in batch.items():
                    key = self._score_key(patient_id)
                    pipe.hset(key, mapping=_flat(score))
                    pipe.expire(key, self.score_ttl_s)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._failed(exc)
            # Keep what failed for the next attempt; newer scores win.
            self._pending_scores = {**batch, **self._pending_scores}
            return 0
        self._ok()
        return len(batch)

    async def latest_score(self, patient_id: str) -> dict | None:
        if self._available():
            try:
                raw = await self._client.hgetall(self._score_key(patient_id))
                self._ok()
                if raw:
                    return _unflat(raw)
            except (RedisError, OSError) as exc:
                self._failed(exc)
        return self._fallback_scores.get(patient_id)

    async def close(self) -> None:
        await self.flush()
        await self._client.aclose()


def _flat(score: dict) -> dict[str, str]:
    return {k: json.dumps(v) for k, v in score.items()}


def _unflat(raw: dict[bytes, bytes]) -> dict:
    return {k.decode(): json.loads(v) for k, v in raw.items()}
