"""What the dashboard reads, kept in Redis so every worker serves the same global view.

Workers own partitions; a coordinator's page must not depend on which worker
answers it. So each worker projects what it computed into Redis, and any worker
renders any page from there:

- the scoring agent: each patient's tier and value at risk per site (the
  work-queue), their score trajectory, the trials and sites seen;
- the trial agent (``streams.sites``): each trial's KRI rows and their history;
- the page agent (``streams.worklist``): alerts with their paged/over-budget
  decision, and the coordinators' actions.

Every write is an idempotent overwrite or set insert (the latest score, a
trajectory point keyed by its event time, an alert by its id, an action by its
id), so re-delivery and replay leave the projection as it was. Score-driven
writes are buffered and flushed in one pipeline per interval, off the per-event
path; Redis being down keeps the buffer (newest wins) for the next flush.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from trialwatch.schemas.contract import MS_PER_DAY

log = logging.getLogger(__name__)

QUEUE_TIERS = ("HIGH", "CRITICAL")  # the tiers a coordinator works on
TRAJECTORY_POINTS = 500  # per patient, newest kept


def site_key(trial_id: str, site_id: str) -> str:
    return f"{trial_id}|{site_id}"


class DashStore:
    def __init__(self, client: aioredis.Redis, prefix: str, ttl_s: int = 30 * 86_400) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_s = ttl_s
        self._latest: dict[str, dict] = {}  # patient -> newest score since the flush
        self._points: list[dict] = []  # every score since the flush (trajectories)
        self._ended: dict[str, tuple[str, str]] = {}  # patient -> (trial, site)
        self._kri: dict[str, dict] = {}  # trial -> {"as_of", "rows"}
        self._warned = False

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, "dash", *parts))

    def score_key(self, patient_id: str) -> str:
        """The latest-score hash ``streams.cache.RiskCache`` writes."""
        return f"{self.prefix}:score:{patient_id}"

    # ------------------------------------------------------------- writers
    def put_score(self, score: dict) -> None:
        self._points.append(score)
        self._latest[score["patient_id"]] = score
        self._ended.pop(score["patient_id"], None)

    def put_ended(self, patient_id: str, trial_id: str, site_id: str) -> None:
        """A withdrawn or completed participant leaves the work-queue."""
        self._latest.pop(patient_id, None)
        self._ended[patient_id] = (trial_id, site_id)

    def put_kri(self, trial_id: str, as_of: int, rows: list[dict]) -> None:
        self._kri[trial_id] = {"as_of": as_of, "rows": rows}

    async def flush(self) -> int:
        """Write what was buffered in one pipeline; return how many records went."""
        latest, points, ended, kri = self._latest, self._points, self._ended, self._kri
        if not (latest or points or ended or kri):
            return 0
        self._latest, self._points, self._ended, self._kri = {}, [], {}, {}
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                self._queue_writes(pipe, latest.values())
                self._trajectory_writes(pipe, points)
                self._ended_writes(pipe, ended)
                self._kri_writes(pipe, kri)
                if points:
                    self._freshness_writes(pipe, max(p["event_time"] for p in points))
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._restore(latest, points, ended, kri)
            if not self._warned:
                log.warning("dashboard projection not written (%s): kept", type(exc).__name__)
                self._warned = True
            return 0
        self._warned = False
        return len(latest) + len(points) + len(ended) + len(kri)

    def _restore(self, latest, points, ended, kri) -> None:
        """Keep what failed; anything buffered meanwhile is newer and wins."""
        self._latest = {**latest, **self._latest}
        self._points = points[-50_000:] + self._points
        self._ended = {**ended, **self._ended}
        self._kri = {**kri, **self._kri}

    def _queue_writes(self, pipe, scores: Iterable[dict]) -> None:
        """A few commands per site, not per patient: redis-py packs each command in
        Python, and one per score field was a sixth of a busy worker's time."""
        by_site: dict[tuple[str, str], list[dict]] = {}
        for s in scores:
            by_site.setdefault((s["trial_id"], s["site_id"]), []).append(s)
        if not by_site:
            return
        pipe.sadd(self.key("trials"), *{trial for trial, _ in by_site})
        sites: dict[str, set[str]] = {}
        for trial, site_id in by_site:
            sites.setdefault(trial, set()).add(site_id)
        for trial, site_ids in sites.items():
            pipe.sadd(self.key("sites", trial), *site_ids)
        for (trial, site_id), rows in by_site.items():
            site = site_key(trial, site_id)
            tiers, queue = self.key("tiers", site), self.key("queue", site)
            pipe.hset(tiers, mapping={s["patient_id"]: s["tier"] for s in rows})
            pipe.expire(tiers, self.ttl_s)
            queued = {
                s["patient_id"]: float(s["value_at_risk"]) for s in rows if s["tier"] in QUEUE_TIERS
            }
            left = [s["patient_id"] for s in rows if s["tier"] not in QUEUE_TIERS]
            if queued:
                pipe.zadd(queue, queued)
            if left:
                pipe.zrem(queue, *left)
            pipe.expire(queue, self.ttl_s)

    def _trajectory_writes(self, pipe, points: list[dict]) -> None:
        by_patient: dict[str, dict[str, int]] = {}
        for s in points:
            member = json.dumps([s["event_time"], round(s["probability"], 6), s["tier"]])
            by_patient.setdefault(s["patient_id"], {})[member] = s["event_time"]
        for patient_id, members in by_patient.items():
            key = self.key("traj", patient_id)
            pipe.zadd(key, members)
            pipe.zremrangebyrank(key, 0, -TRAJECTORY_POINTS - 1)
            pipe.expire(key, self.ttl_s)

    def _freshness_writes(self, pipe, newest_event_time: int) -> None:
        """The newest event time any worker projected (ZADD GT keeps the maximum, no
        script needed), and the wall time of the last write."""
        fresh = self.key("fresh")
        pipe.zadd(fresh, {"event_time": newest_event_time}, gt=True)
        pipe.zadd(fresh, {"wall_time": _wall_ms()})

    def _ended_writes(self, pipe, ended: dict[str, tuple[str, str]]) -> None:
        for patient_id, (trial_id, site_id) in ended.items():
            site = site_key(trial_id, site_id)
            pipe.zrem(self.key("queue", site), patient_id)
            pipe.hdel(self.key("tiers", site), patient_id)

    def _kri_writes(self, pipe, kri: dict[str, dict]) -> None:
        for trial_id, view in kri.items():
            pipe.set(self.key("kri", trial_id), json.dumps(view), ex=self.ttl_s)
            day = view["as_of"] // MS_PER_DAY * MS_PER_DAY
            for row in view["rows"]:
                history = self.key("krihist", site_key(trial_id, row["site_id"]))
                pipe.hset(history, str(day), json.dumps(_history_point(row, day)))
                pipe.expire(history, self.ttl_s)

    async def record_alert(self, alert: dict, paged: bool) -> None:
        """An alert and whether it paged (``streams.worklist``): keyed by its id."""
        entry = {
            "alert_id": alert["alert_id"],
            "tier": alert["tier"],
            "event_time": alert["event_time"],
            "event_type": alert["event_type"],
            "probability": alert["probability"],
            "reasons": alert["reasons"],
            "recommended_action": alert["recommended_action"],
            "paged": paged,
        }
        key = self.key("alerts", alert["patient_id"])
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hset(key, alert["alert_id"], json.dumps(entry))
            pipe.expire(key, self.ttl_s)
            await pipe.execute()

    async def record_action(self, action: dict) -> None:
        key = self.key("actions", action["alert_id"])
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hset(key, action["action_id"], json.dumps(action))
            pipe.expire(key, self.ttl_s)
            await pipe.execute()

    # ------------------------------------------------------------- readers
    async def trials(self) -> list[str]:
        return sorted(m.decode() for m in await self.client.smembers(self.key("trials")))

    async def sites(self, trial_id: str) -> list[str]:
        members = await self.client.smembers(self.key("sites", trial_id))
        return sorted(m.decode() for m in members)

    async def site_rows(self, trial_id: str) -> list[dict]:
        """The trial's KRI rows (one per site, ``models.kri.kri_rows``), each with its
        at-risk counts by tier and value at risk from the work-queue."""
        raw = await self.client.get(self.key("kri", trial_id))
        view = json.loads(raw) if raw else {"as_of": None, "rows": []}
        by_site = {row["site_id"]: dict(row) for row in view["rows"]}
        for site_id in await self.sites(trial_id):
            by_site.setdefault(site_id, {"site_id": site_id, "as_of": None, "status": "none"})
        for site_id, row in by_site.items():
            row.update(await self._at_risk(trial_id, site_id))
        return [by_site[s] for s in sorted(by_site)]

    async def _at_risk(self, trial_id: str, site_id: str) -> dict:
        site = site_key(trial_id, site_id)
        tiers = await self.client.hgetall(self.key("tiers", site))
        counts = {tier: 0 for tier in QUEUE_TIERS}
        for tier in tiers.values():
            if tier.decode() in counts:
                counts[tier.decode()] += 1
        queued = await self.client.zrange(self.key("queue", site), 0, -1, withscores=True)
        return {"at_risk": counts, "value_at_risk": round(sum(v for _, v in queued), 2)}

    async def kri_history(self, trial_id: str, site_id: str) -> list[dict]:
        raw = await self.client.hgetall(self.key("krihist", site_key(trial_id, site_id)))
        return sorted((json.loads(v) for v in raw.values()), key=lambda p: p["as_of"])

    async def queue(self, trial_id: str, site_id: str, limit: int = 200) -> list[dict]:
        """At-risk participants of a site ranked by value at risk (highest first), each
        with their latest score, top reasons and alert history with its actions."""
        queue_key = self.key("queue", site_key(trial_id, site_id))
        ranked = await self.client.zrevrange(queue_key, 0, limit - 1, withscores=True)
        rows = []
        for member, value_at_risk in ranked:
            patient_id = member.decode()
            score = await self.latest_score(patient_id)
            if score is None:  # its latest score expired: nothing to show
                continue
            alerts = await self.alerts(patient_id)
            rows.append(_queue_row(patient_id, value_at_risk, score, alerts))
        return rows

    async def alerts(self, patient_id: str) -> list[dict]:
        raw = await self.client.hgetall(self.key("alerts", patient_id))
        alerts = sorted((json.loads(v) for v in raw.values()), key=lambda a: a["event_time"])
        for alert in alerts:
            actions = await self.client.hgetall(self.key("actions", alert["alert_id"]))
            alert["actions"] = sorted(
                (json.loads(v) for v in actions.values()), key=lambda a: a["at_wall_ms"]
            )
        return alerts

    async def alert(self, patient_id: str, alert_id: str) -> dict | None:
        raw = await self.client.hget(self.key("alerts", patient_id), alert_id)
        return None if raw is None else json.loads(raw)

    async def trajectory(self, patient_id: str) -> list[dict]:
        members = await self.client.zrange(self.key("traj", patient_id), 0, -1)
        points = (json.loads(m) for m in members)
        return [{"event_time": t, "probability": p, "tier": tier} for t, p, tier in points]

    async def latest_score(self, patient_id: str) -> dict | None:
        raw = await self.client.hgetall(self.score_key(patient_id))
        return {k.decode(): json.loads(v) for k, v in raw.items()} if raw else None

    async def freshness(self) -> dict:
        raw = await self.client.zrange(self.key("fresh"), 0, -1, withscores=True)
        return {name.decode(): int(score) for name, score in raw}

    async def close(self) -> None:
        await self.flush()
        await self.client.aclose()


def _history_point(row: dict, day: int) -> dict:
    point: dict[str, Any] = {"as_of": day}
    for name, kri in (row.get("kris") or {}).items():
        point[name] = kri.get("value")
    return point


def _queue_row(patient_id: str, value_at_risk: float, score: dict, alerts: list[dict]) -> dict:
    latest_alert = alerts[-1] if alerts else None
    return {
        "patient_id": patient_id,
        "trial_id": score["trial_id"],
        "site_id": score["site_id"],
        "tier": score["tier"],
        "probability": score["probability"],
        "value_at_risk": round(value_at_risk, 2),
        "clv": score["clv"],
        "event_type": score["event_type"],
        "event_time": score["event_time"],
        "reasons": latest_alert["reasons"] if latest_alert else [],
        "recommended_action": latest_alert["recommended_action"] if latest_alert else "",
        "alerts": alerts,
    }


def _wall_ms() -> int:
    """The projection's wall time: shown as freshness only, never in a computation."""
    return int(time.time() * 1000)
