"""Pages: which alerts interrupt a coordinator, under an optional weekly budget.

Every alert stays on ``risk-alerts`` and in the work-queue. A page (a record on
``risk-pages``, what a pager or e-mail bridge consumes) is sent for every
CRITICAL alert and for HIGH alerts while the site's budget for that event-time
week lasts (``TRIALWATCH_ALERT_BUDGET``; 0: no budget).

The budget is counted in Redis by one Lua script per alert, so it holds across
workers; the decision is stored under the alert id and a re-delivered alert gets
the same one. Which HIGH alerts of a week fall inside the budget follows the
order they reach Redis. Pages are claimed like alerts (``streams.cache``), so a
re-delivered alert does not page twice. Without Redis every alert pages: a
coordinator may get more pages, never miss one.
"""

from __future__ import annotations

import logging

from redis.exceptions import RedisError

from trialwatch.models.alerts import budget_week, pages_without_budget
from trialwatch.streams import metrics, runtime
from trialwatch.streams.app import app
from trialwatch.streams.topics import risk_alerts_topic, risk_pages_topic

log = logging.getLogger(__name__)

_DECIDE = """
local decided = redis.call('HGET', KEYS[1], ARGV[1])
if decided then return decided end
local paged = tonumber(redis.call('HGET', KEYS[1], '#paged') or '0')
if paged < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], ARGV[1], 'paged')
  redis.call('HINCRBY', KEYS[1], '#paged', 1)
  decided = 'paged'
else
  redis.call('HSET', KEYS[1], ARGV[1], 'over')
  decided = 'over'
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return decided
"""


class Budget:
    def __init__(self, client, prefix: str, per_site_week: int, ttl_s: int) -> None:
        self.per_site_week = per_site_week
        self.prefix = prefix
        self.ttl_s = ttl_s
        self._decide = client.register_script(_DECIDE)

    async def pages(self, alert: dict) -> bool:
        """Does this alert page? (idempotent per alert id)"""
        if pages_without_budget(alert["tier"], self.per_site_week):
            return True
        week = budget_week(alert["event_time"])
        key = f"{self.prefix}:budget:{alert['trial_id']}|{alert['site_id']}|{week}"
        try:
            decided = await self._decide(
                keys=[key], args=[alert["alert_id"], self.per_site_week, self.ttl_s]
            )
        except (RedisError, OSError) as exc:
            log.warning("alert budget unavailable (%s): paging", type(exc).__name__)
            return True
        return decided == b"paged"


@app.agent(risk_alerts_topic)
async def page_alerts(stream):
    """Decide each alert's page, send it, and show the alert in the work-queue."""
    settings = runtime.settings
    store = runtime.dashstore()
    budget = Budget(store.client, settings.app_id, settings.alert_budget, settings.dedup_ttl_s)
    cache = runtime.cache()
    async for alert in stream:
        paged = await budget.pages(alert)
        if paged:
            await _page_once(cache, alert)
        else:
            metrics.PAGES_OVER_BUDGET.inc()
        await store.record_alert(alert, paged)


async def _page_once(cache, alert: dict) -> None:
    claim_id = f"page:{alert['alert_id']}"
    claim = await cache.claim_alert(claim_id)
    if not claim.send:
        return
    ack = await risk_pages_topic.send(key=alert["patient_id"].encode(), value=alert)
    await ack
    await cache.mark_alert_sent(claim_id)
    metrics.PAGES.labels(alert["tier"]).inc()
