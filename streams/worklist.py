"""The coordinator's side: pages under an optional weekly budget, and actions.

Every alert stays on ``risk-alerts`` and in the work-queue. A page (a record on
``risk-pages``, what a pager or e-mail bridge consumes) is sent for every
CRITICAL alert and for HIGH alerts while the site's budget for that event-time
week lasts (``TRIALWATCH_ALERT_BUDGET``; 0: no budget).

The budget is counted in Redis (``streams.budget``), so it holds across workers.
Pages are claimed like alerts (``streams.cache``), so a re-delivered alert does
not page twice.
"""

from __future__ import annotations

from trialwatch.streams import metrics, runtime
from trialwatch.streams.actions import action_record
from trialwatch.streams.app import app
from trialwatch.streams.budget import Budget
from trialwatch.streams.topics import alert_actions_topic, risk_alerts_topic, risk_pages_topic


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


async def send_action(alert: dict, action: str, actor: str, assignee: str | None) -> dict:
    """Record an action: returns once the broker acknowledged it (raises ActionError)."""
    record = action_record(alert, action, actor, assignee)
    ack = await alert_actions_topic.send(key=alert["patient_id"].encode(), value=record)
    await ack
    return record


@app.agent(alert_actions_topic)
async def project_alert_actions(stream):
    """Every action into the dashboard's projection (idempotent: keyed by its id)."""
    store = runtime.dashstore()
    async for action in stream:
        await store.record_action(action)
