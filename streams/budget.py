"""The alert budget: how many HIGH alerts per site and event-time week page.

Counted in Redis by one Lua script per alert, so the budget holds across
workers; the decision is stored under the alert id, so a re-delivered alert
gets the same one. Which HIGH alerts of a week fall inside the budget follows
the order they reach Redis. Without Redis every alert pages: a coordinator may
get more pages, never miss one.
"""

from __future__ import annotations

import logging

from redis.exceptions import RedisError

from trialwatch.models.alerts import budget_week, pages_without_budget

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
