"""``trialwatch alerts``: follow the risk-alerts topic, for people or machines."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from trialwatch.schemas import codec as avro
from trialwatch.schemas.exceptions import DecodeError
from trialwatch.streams.settings import Settings, aiokafka_kwargs

TIER_STYLE = {"CRITICAL": "bold red", "HIGH": "red", "MEDIUM": "yellow", "LOW": "green"}


def alert_table(alerts: list[dict], title: str = "trialwatch alerts") -> Table:
    table = Table(title=title, expand=True)
    for column in ("event time", "patient", "trial", "tier", "p(60d)", "CLV $", "at risk $"):
        table.add_column(column, no_wrap=True)
    table.add_column("why", ratio=1)
    table.add_column("action")
    for alert in alerts[-20:]:
        when = datetime.fromtimestamp(alert["event_time"] / 1000, UTC).strftime("%Y-%m-%d")
        why = "; ".join(r["text"] for r in alert["reasons"])
        table.add_row(
            when,
            alert["patient_id"],
            alert["trial_id"],
            f"[{TIER_STYLE.get(alert['tier'], '')}]{alert['tier']}",
            f"{alert['probability']:.2f}",
            f"{alert['clv']:,.0f}",
            f"{alert['value_at_risk']:,.0f}",
            why,
            alert["recommended_action"],
        )
    return table


async def tail_alerts(
    s: Settings,
    *,
    as_json: bool = False,
    from_beginning: bool = False,
    limit: int = 0,
    seconds: float = 0.0,
    stop: asyncio.Event | None = None,
) -> list[dict]:
    consumer = AIOKafkaConsumer(
        s.risk_alerts_topic,
        **aiokafka_kwargs(s),
        group_id=f"{s.app_id}-tail-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: list[dict] = []
    deadline = time.monotonic() + seconds if seconds else None
    live = None if as_json else Live(alert_table(seen), console=Console(), auto_refresh=False)
    try:
        if live:
            live.start()
        while not (stop and stop.is_set()):
            if deadline and time.monotonic() >= deadline:
                break
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    try:
                        alert = avro.decode(record.value, "RiskAlert")
                    except DecodeError as exc:
                        print(
                            f"undecodable alert at offset {record.offset}: {exc}", file=sys.stderr
                        )
                        continue
                    seen.append(alert)
                    if as_json:
                        print(json.dumps(alert), flush=True)
            if live:
                live.update(alert_table(seen, f"trialwatch alerts ({len(seen)})"), refresh=True)
            if limit and len(seen) >= limit:
                break
    finally:
        if live:
            live.stop()
        await consumer.stop()
    return seen
