"""Site risk indicators in the stream: re-keyed by site, then by trial.

visit events --(scoring agent: models.kri.site_delta)--> site-deltas [trial|site]
  --(fold_site_deltas: a SiteBook per site)--> site-kris [trial]
  --(fold_site_kris: a TrialBook per trial: z-scores against the study, status)
  --> site-alerts, and the dashboard's projection in Redis.

The stages are the Faust way of a KTable aggregation followed by a re-grouping:
each book lives on the worker that owns its key, so the numbers are right with
any number of workers. Both folds are idempotent (a site book drops a delta it
holds, a trial book replaces a site's absolute numbers), so re-delivery and
replayed history change nothing; event time is the only clock.

Only events that change a site's numbers produce a delta (an ePRO does not).
The site book's write is per delta for now; batching it is the hot-path issue's.
"""

from __future__ import annotations

import logging

from trialwatch.models.kri import fold_site, fold_trial, kri_rows, site_summary
from trialwatch.streams import metrics, runtime
from trialwatch.streams.app import app
from trialwatch.streams.tables import site_to_book, trial_to_sites
from trialwatch.streams.topics import site_alerts_topic, site_deltas_topic, site_kris_topic

log = logging.getLogger(__name__)


@app.agent(site_deltas_topic)
async def fold_site_deltas(stream):
    """A site's book, and its absolute numbers on to its trial."""
    async for event in stream.events():
        book = site_to_book.get(event.key)
        folded = fold_site(book, event.value)
        if folded is None:
            # Held already: its summary may not have left before a crash. Re-sending
            # absolute numbers is idempotent downstream.
            if book is not None:
                await _send_summary(book)
            continue
        await _send_summary(folded)  # before the table write: see streams.processing
        site_to_book[event.key] = folded


async def _send_summary(book) -> None:
    summary = site_summary(book)
    await site_kris_topic.send(key=summary["trial_id"].encode(), value=summary)


@app.agent(site_kris_topic)
async def fold_site_kris(stream):
    """A trial's sites against each other; a site turning red (or green) is news."""
    store, cache = runtime.dashstore(), runtime.cache()
    async for event in stream.events():
        book, alerts = fold_trial(trial_to_sites.get(event.key), event.value)
        for alert in alerts:
            await _emit_site_alert(cache, alert)
        trial_to_sites[event.key] = book
        store.put_kri(book.trial_id, event.value["as_of"], kri_rows(book))


async def _emit_site_alert(cache, alert: dict) -> None:
    """Claimed, awaited, marked sent: the protocol of participant alerts."""
    claim_id = f"site:{alert['alert_id']}"
    claim = await cache.claim_alert(claim_id)
    if not claim.send:
        return
    key = f"{alert['trial_id']}|{alert['site_id']}".encode()
    ack = await site_alerts_topic.send(key=key, value=alert)
    await ack
    await cache.mark_alert_sent(claim_id)
    metrics.SITE_ALERTS.labels(alert["status"]).inc()
    log.info("site %s of trial %s is %s", alert["site_id"], alert["trial_id"], alert["status"])
