"""``trialwatch alerts``: follow the risk-alerts topic, for people or machines.

On a terminal: a live table of the newest alerts that fits the terminal's width.
Piped or redirected: one plain line per alert, never wrapped. ``--json``: one
JSON object per line.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer
from rich import box
from rich.console import Console, ConsoleOptions
from rich.live import Live
from rich.table import Table
from rich.text import Text

from trialwatch.schemas import codec as avro
from trialwatch.schemas.exceptions import DecodeError
from trialwatch.streams.console import make_console
from trialwatch.streams.security import aiokafka_kwargs, start_or_exit
from trialwatch.streams.settings import Settings

TIER_STYLE = {"CRITICAL": "bold red", "HIGH": "red", "MEDIUM": "yellow", "LOW": "green"}


def _date(alert: dict) -> str:
    return datetime.fromtimestamp(alert["event_time"] / 1000, UTC).strftime("%Y-%m-%d")


def _top_reason(alert: dict) -> str:
    return alert["reasons"][0]["text"] if alert["reasons"] else ""


def _all_reasons(alert: dict) -> str:
    return "; ".join(r["text"] for r in alert["reasons"])


@dataclass(frozen=True)
class _Column:
    header: str
    cell: Callable[[dict], str]
    justify: str = "left"


# Display order. Tier, p, value at risk and the top reason always show; the
# others join, in OPTIONAL's order, while the reason keeps REASON_MIN columns.
_COLUMNS = {
    "date": _Column("event time", _date),
    "patient": _Column("patient", lambda a: a["patient_id"]),
    "trial": _Column("trial", lambda a: a["trial_id"]),
    "tier": _Column("tier", lambda a: a["tier"]),
    "p": _Column("p(60d)", lambda a: f"{a['probability']:.2f}", "right"),
    "clv": _Column("CLV $", lambda a: f"{a['clv']:,.0f}", "right"),
    "risk": _Column("at risk $", lambda a: f"{a['value_at_risk']:,.0f}", "right"),
}
CORE = ("tier", "p", "risk")
OPTIONAL = ("patient", "trial", "clv", "date")
REASON_MIN = 36  # the longest phrases wrap once, none is cut
ACTION_MIN = 40  # the action joins last, beside a reason column of at least this too
ALL_REASONS_MIN = 90  # from this reason width on, every reason rather than the top one
GAP = 2  # right padding and divider between two columns (box SIMPLE_HEAD, no edge)
CHROME_LINES = 4  # title, header, header rule, and one line a live view keeps free


def plan_columns(alerts: Sequence[dict], width: int) -> tuple[list[str], bool, bool]:
    """Which fixed columns fit in ``width``, and whether the action and all reasons do.

    Fixed columns take their widest cell; what is left goes to the reason (and
    the action). Less important columns are dropped rather than squeezed.
    """

    def natural(name: str) -> int:
        column = _COLUMNS[name]
        return max([len(column.header), *(len(column.cell(a)) for a in alerts)])

    chosen = list(CORE)
    used = sum(natural(n) for n in chosen) + GAP * len(chosen)
    for name in OPTIONAL:
        if width - used - natural(name) - GAP >= REASON_MIN:
            chosen.append(name)
            used += natural(name) + GAP
    left = width - used
    with_action = left - GAP >= REASON_MIN + ACTION_MIN
    reason_width = (left - GAP) // 2 if with_action else left
    order = [n for n in _COLUMNS if n in chosen]
    return order, with_action, reason_width >= ALL_REASONS_MIN


@dataclass
class AlertTable:
    """The newest alerts, newest first, as a table drawn to the width it gets.

    Built at render time, so a live view follows a resized terminal. Rows are
    the last ``rows`` alerts received (default: as many as the height allows);
    should long reasons still overflow, a live view crops at the bottom, which
    holds the oldest rows.
    """

    alerts: Sequence[dict]
    title: str = "trialwatch alerts"
    rows: int | None = None

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Table]:
        rows = self.rows if self.rows is not None else options.size.height - CHROME_LINES
        yield self.table(options.max_width, max(rows, 1))

    def table(self, width: int, rows: int) -> Table:
        shown = list(reversed(self.alerts[-rows:]))
        names, with_action, all_reasons = plan_columns(shown, width)
        table = Table(
            title=self.title,
            box=box.SIMPLE_HEAD,
            show_edge=False,
            pad_edge=False,
            padding=(0, 1, 0, 0),
            expand=True,
        )
        for name in names:
            column = _COLUMNS[name]
            table.add_column(column.header, justify=column.justify, no_wrap=True)
        table.add_column("why" if all_reasons else "top reason", ratio=1, overflow="fold")
        if with_action:
            table.add_column("action", ratio=1, overflow="fold")
        for alert in shown:
            cells = [Text(_COLUMNS[n].cell(alert)) for n in names]
            cells[names.index("tier")].stylize(TIER_STYLE.get(alert["tier"], ""))
            cells.append(Text(_all_reasons(alert) if all_reasons else _top_reason(alert)))
            if with_action:
                cells.append(Text(alert["recommended_action"]))
            table.add_row(*cells)
        return table


def alert_table(
    alerts: Sequence[dict], title: str = "trialwatch alerts", rows: int | None = None
) -> AlertTable:
    """The live table of ``trialwatch alerts`` and the demo (see ``AlertTable``)."""
    return AlertTable(alerts, title, rows)


def alert_line(alert: dict) -> str:
    """One alert as one plain line, for a pipe or a log: every field, no wrapping."""
    return (
        f"{_date(alert)} {alert['patient_id']} {alert['trial_id']} {alert['tier']} "
        f"p(60d)={alert['probability']:.2f} CLV=${alert['clv']:,.0f} "
        f"at_risk=${alert['value_at_risk']:,.0f} | why: {_all_reasons(alert)} "
        f"| action: {alert['recommended_action']}"
    )


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
    await start_or_exit(consumer, s)
    seen: list[dict] = []
    deadline = time.monotonic() + seconds if seconds else None
    console = make_console()
    live = None
    if not as_json and console.is_terminal:
        live = Live(alert_table(seen), console=console, auto_refresh=False)
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
                    elif not live:
                        print(alert_line(alert), flush=True)
            if live:
                live.update(alert_table(seen, f"trialwatch alerts ({len(seen)})"), refresh=True)
            if limit and len(seen) >= limit:
                break
    finally:
        if live:
            live.stop()
        await consumer.stop()
    return seen
