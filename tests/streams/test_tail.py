"""The alert table at 80 columns, and the plain line a pipe gets instead.

Each alert is rendered by rich into a StringIO console of an explicit width and
height, so nothing here depends on the terminal the tests run in.
"""

from __future__ import annotations

import io

from rich.console import Console

from trialwatch.models.tiers import ACTIONS
from trialwatch.streams.tail import alert_line, alert_table

TIERS = ("MEDIUM", "HIGH", "CRITICAL")
DAY_MS = 86_400_000


def make_alert(i: int) -> dict:
    """Alert ``i``: every shown value is distinct, so a row can be told apart."""
    tier = TIERS[i % len(TIERS)]
    return {
        "patient_id": f"P{i:07d}",
        "trial_id": f"T{i % 7:03d}",
        "event_time": 1_700_000_000_000 + i * DAY_MS,
        "tier": tier,
        "probability": 0.30 + i / 100,
        "clv": 40_000.0 + 1_000 * i,
        "value_at_risk": 10_000.0 + 137 * i,
        "recommended_action": ACTIONS[tier],
        "reasons": [
            {"feature": "consecutive_missed", "value": 2.0, "contribution": 0.9,
             "text": f"missed the last {i} visit(s) in a row"},
            {"feature": "age", "value": 71.0, "contribution": 0.1, "text": "aged 71"},
        ],
    }  # fmt: skip


def render(renderable, width: int, height: int = 30) -> list[str]:
    buffer = io.StringIO()
    Console(width=width, height=height, file=buffer, color_system=None).print(renderable)
    return buffer.getvalue().splitlines()


def row_of(lines: list[str], alert: dict) -> str | None:
    found = [line for line in lines if alert["patient_id"] in line]
    assert len(found) <= 1
    return found[0] if found else None


def test_at_80_columns_the_newest_alerts_show_tier_p_value_at_risk_and_top_reason():
    alerts = [make_alert(i) for i in range(60)]
    lines = render(alert_table(alerts), width=80, height=30)

    assert all(len(line) <= 80 for line in lines)
    for alert in alerts[-20:]:
        row = row_of(lines, alert)
        assert row is not None, f"{alert['patient_id']} (one of the newest) is missing"
        assert alert["tier"] in row
        assert f"{alert['probability']:.2f}" in row
        assert f"{alert['value_at_risk']:,.0f}" in row
        assert alert["reasons"][0]["text"] in row
    for alert in alerts[:30]:
        assert row_of(lines, alert) is None, f"{alert['patient_id']} is old and shown"


def test_the_newest_alert_is_the_first_row_and_rows_follow_the_height():
    alerts = [make_alert(i) for i in range(60)]
    for height in (12, 30):
        lines = render(alert_table(alerts), width=80, height=height)
        shown = [a for a in alerts if row_of(lines, a) is not None]
        assert 0 < len(shown) <= height
        assert shown == alerts[-len(shown) :]
        rows = [lines.index(row_of(lines, a)) for a in reversed(shown)]
        assert rows == sorted(rows), "newest first"


def test_a_wide_terminal_gets_the_dropped_columns_back():
    alerts = [make_alert(i) for i in range(5)]
    narrow, wide = render(alert_table(alerts), width=80), render(alert_table(alerts), width=200)
    newest = alerts[-1]
    for text in ("2023-11-18", "T004", "44,000", ACTIONS[newest["tier"]][:30]):
        assert text not in "\n".join(narrow)
        assert text in row_of(wide, newest)


def test_a_piped_alert_is_one_line_with_every_field():
    alert = make_alert(7)
    line = alert_line(alert)
    assert "\n" not in line
    for text in (
        "2023-11-21",
        "P0000007",
        "T000",
        "HIGH",
        "p(60d)=0.37",
        "CLV=$47,000",
        "at_risk=$10,959",
        "missed the last 7 visit(s) in a row; aged 71",
        ACTIONS["HIGH"],
    ):
        assert text in line
