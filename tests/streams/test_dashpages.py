"""The dashboard's HTML and CSV (streams.dashpages), rendered from a small in-memory
stand-in of the DashStore API of /work/dash-design.md: escaping, freshness, htmx
polling, the CSV equal to the queue, and nothing about the person on any page."""

from __future__ import annotations

import csv
import io
import re

import pytest

from trialwatch.streams import dashpages as pages

NOW = 1_780_000_000_000
EVIL = '<script>alert("x")</script>'


class FakeDashStore:
    """The DashStore API (async), in memory."""

    def __init__(self) -> None:
        kri = lambda v, flag: {"value": v, "study": 0.1, "z": 2.5, "flag": flag}  # noqa: E731
        self.rows = {
            "T1": [
                {
                    "site_id": "S1", "as_of": NOW - 5000, "status": "RED",
                    "missed_visit_pct": kri(0.4, "red"), "ae_rate": kri(0.01, "amber"),
                    "at_risk": {"HIGH": 3, "CRITICAL": 1}, "value_at_risk": 12345.6,
                },
                {
                    "site_id": EVIL, "as_of": NOW - 5000, "status": "GREEN",
                    "missed_visit_pct": kri(0.1, "green"), "ae_rate": kri(0.2, "none"),
                    "at_risk": {}, "value_at_risk": 0.0,
                },
            ]
        }  # fmt: skip
        self.queues = {
            ("T1", "S1"): [
                {
                    "patient_id": "P-0001", "tier": "CRITICAL", "probability": 0.61,
                    "value_at_risk": 9000.0, "clv": 15000.0, "event_type": "VISIT_MISSED",
                    "event_time": NOW - 86_400_000, "recommended_action": "call today",
                    "reasons": [
                        {"feature": "consecutive_missed", "value": 2.0, "contribution": 0.9,
                         "text": "missed the last 2 visit(s) in a row"},
                        {"feature": "age", "value": 83.0, "contribution": 0.2, "text": "aged 83"},
                        {"feature": "distance_km", "value": 141.0, "contribution": 0.1,
                         "text": "lives 141 km from the site"},
                    ],
                    "alerts": [
                        {"alert_id": "a-1", "tier": "CRITICAL", "event_time": NOW - 86_400_000,
                         "paged": True, "actions": [{"action": "ACKNOWLEDGED", "by": "ana",
                                                     "at": NOW - 1000}]},
                        {"alert_id": "a-0", "tier": "HIGH", "event_time": NOW - 9 * 86_400_000,
                         "paged": False, "actions": []},
                    ],
                },
                {
                    "patient_id": EVIL, "tier": "HIGH", "probability": 0.3,
                    "value_at_risk": 100.0, "clv": 400.0, "event_type": "CONTACT_ATTEMPT",
                    "event_time": NOW - 3_600_000, "recommended_action": "a, \"quoted\" action",
                    "reasons": [{"feature": "sex", "value": 1.0, "contribution": 0.3,
                                 "text": "sex recorded at enrolment"}],
                    "alerts": [],
                },
            ]
        }  # fmt: skip

    async def trials(self):
        return list(self.rows)

    async def site_rows(self, trial_id):
        return self.rows.get(trial_id, [])

    async def kri_history(self, trial_id, site_id):
        return [
            {"as_of": NOW - 3 * 86_400_000, "missed_visit_pct": 0.1, "ae_rate": 0.02},
            {"as_of": NOW - 2 * 86_400_000, "missed_visit_pct": 0.3, "ae_rate": 0.01},
            {"as_of": NOW - 1 * 86_400_000, "missed_visit_pct": 0.4, "ae_rate": 0.01},
        ]

    async def queue(self, trial_id, site_id, limit=200):
        return self.queues.get((trial_id, site_id), [])[:limit]

    async def trajectory(self, patient_id):
        return [
            {"event_time": NOW - 3 * 86_400_000, "probability": 0.05, "tier": "LOW"},
            {"event_time": NOW - 86_400_000, "probability": 0.61, "tier": "CRITICAL"},
        ]

    async def latest_score(self, patient_id):
        return {
            "patient_id": patient_id, "tier": "CRITICAL", "probability": 0.61,
            "horizon_days": 60, "clv": 15000.0, "value_at_risk": 9000.0,
            "event_time": NOW - 86_400_000, "event_type": "VISIT_MISSED",
            "retention_days": [0, 30, 60, 90], "retention": [1.0, 0.7, 0.4, 0.3],
        }  # fmt: skip

    async def freshness(self):
        return {"event_time": NOW - 86_400_000, "wall_time": NOW - 1500}


@pytest.fixture
def store() -> FakeDashStore:
    return FakeDashStore()


PERSONAL = (re.compile(r"aged \d"), re.compile(r"\d+ km"), re.compile(r"sex recorded"))


def assert_no_person(html: str) -> None:
    for pattern in PERSONAL:
        assert not pattern.search(html), pattern.pattern


def assert_escaped(html: str) -> None:
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html


async def test_portfolio_shows_flags_at_risk_and_freshness(store):
    trials = [(t, await store.site_rows(t)) for t in await store.trials()]
    html = pages.portfolio_page(trials, await store.freshness(), NOW)
    assert 'hx-get="/dashboard?part=portfolio"' in html and "every 2s" in html
    assert '<script src="/dashboard/static/htmx.min.js">' in html
    assert re.search(r"event time <span class=\"event-time\">\d{4}-\d\d-\d\d", html)
    assert re.search(r"wall time\) <span class=\"wall-time\">\d{4}-\d\d-\d\d", html)
    assert 'href="/dashboard/sites/T1/S1"' in html
    assert 'data-flag="red"' in html and 'data-flag="amber"' in html
    assert '<td data-col="high">3</td>' in html and '<td data-col="critical">1</td>' in html
    assert "12,346" in html
    assert_escaped(html)
    # a hostile site id is escaped in the link too (one path segment)
    assert "/dashboard/sites/T1/%3Cscript%3E" in html
    assert "http" not in html.replace("hx-", "")  # no host named: nothing from the internet


async def test_the_site_page_ranks_the_queue_and_offers_actions(store):
    queue = await store.queue("T1", "S1")
    html = pages.site_page(
        "T1", "S1", queue, await store.kri_history("T1", "S1"), await store.freshness(), NOW
    )
    assert 'hx-get="/dashboard/sites/T1/S1?part=queue"' in html
    assert 'hx-get="/dashboard/sites/T1/S1?part=kris"' in html
    assert html.index("P-0001") < html.index("&lt;script")
    assert 'hx-post="/dashboard/alerts/a-1/ack"' in html
    assert 'hx-post="/dashboard/alerts/a-1/assign"' in html and 'name="assignee"' in html
    assert "ACKNOWLEDGED by ana" in html
    assert "over budget (not paged)" in html and ">paged<" in html
    assert "missed the last 2 visit(s) in a row" in html
    assert html.count("<svg") == 2 and "<polyline" in html  # one chart per KRI
    assert 'href="/dashboard/sites/T1/S1/queue.csv"' in html
    assert_escaped(html)
    assert_no_person(html)


async def test_the_csv_export_equals_the_queue(store):
    queue = await store.queue("T1", "S1")
    rows = list(csv.DictReader(io.StringIO(pages.queue_csv(queue))))
    assert [r["patient_id"] for r in rows] == [q["patient_id"] for q in queue]
    html = pages.queue_fragment("T1", "S1", queue, None, NOW)
    for rank, (row, q) in enumerate(zip(rows, queue, strict=True), start=1):
        assert row == pages.queue_record(rank, q)
        for col in ("rank", "probability", "value_at_risk", "last_event", "alerts", "paged"):
            assert f'<td data-col="{col}">{pages.e(row[col])}</td>' in html
    assert rows[0]["probability"] == "61.0%" and rows[0]["alerts"] == "2"
    assert rows[1]["recommended_action"] == 'a, "quoted" action'  # the csv module quotes it
    text = pages.queue_csv(queue)
    assert_no_person(text)
    assert "enrolment attribute (age)" in text


async def test_the_participant_page_shows_both_directions_and_no_person(store):
    state = {
        "patient_id": "P-0001", "trial_id": "T1", "site_id": "S1", "phase": "III",
        "enrolled_at": NOW - 90 * 86_400_000, "last_event_time": NOW - 86_400_000,
        "completed_visits": 3, "missed_visits": 2, "planned_visits": 12, "ended": False,
        "visits": ((1, NOW - 60 * 86_400_000, 1, 0.5), (2, NOW - 30 * 86_400_000, 0, 0.0)),
        "aes": ((NOW - 20 * 86_400_000, 2, 1),), "epros": ((NOW - 10 * 86_400_000, 55.0),),
        "contacts": ((NOW - 2 * 86_400_000, 0),),
        "age": 83, "sex": "F", "distance_km": 141.0,  # present in a state: never shown
    }  # fmt: skip
    both = {
        "raising": [{"feature": "consecutive_missed", "value": 2.0, "contribution": 0.9}],
        "lowering": [
            {"feature": "visit_compliance", "value": 0.8, "contribution": -0.4},
            {"feature": "age", "value": 83.0, "contribution": -0.1},
        ],
    }
    html = pages.patient_fragment(
        "P-0001", state, await store.latest_score("P-0001"), both,
        await store.trajectory("P-0001"), NOW,
    )  # fmt: skip
    assert "Raises the risk" in html and "Lowers the risk" in html
    assert 'class="raising"' in html and 'data-feature="visit_compliance"' in html
    assert "+0.900 log-odds" in html and "-0.400 log-odds" in html
    assert 'class="trajectory"' in html and 'class="retention"' in html
    assert "CLV 15,000" in html
    for what in ("visit 2 missed", "adverse event, grade 2, serious", "ePRO answered, score 55",
                 "contact attempt, not reached", "enrolled"):  # fmt: skip
        assert what in html
    assert "event time" in html and "wall time" in html
    assert_no_person(html)
    assert "83" not in html and "141" not in html


def test_the_model_page_and_the_upload_result():
    html = pages.model_page("v1", {"test_metrics": {"roc_auc": 0.81234}, "note": EVIL},
                            ["pr_curve.png"], NOW)  # fmt: skip
    assert 'src="/dashboard/model/plots/pr_curve.png"' in html and "0.8123" in html
    assert_escaped(html)
    report = {
        "records": 4, "outcomes": {"applied": 2, "dead_lettered": 2},
        "bad": [(2, "malformed_json: Expecting value at column 1"), (4, EVIL)],
        "scores": [{"patient_id": "P-9", "tier": "LOW", "probability": 0.02,
                    "value_at_risk": 1.0, "event_time": NOW}],
        "alerts": [], "max_event_time": NOW,
    }  # fmt: skip
    html = pages.upload_result(report, NOW)
    assert '<td data-col="number">2</td>' in html and '<td data-col="number">4</td>' in html
    assert "Bad rows (2)" in html
    assert_escaped(html)
    assert "larger than" in pages.upload_result({"error": "the file is larger than 4 KiB"}, NOW)


def test_charts_survive_odd_data():
    assert "no data" in pages.line_chart([], "empty")
    one = pages.line_chart([(1.0, 0.5)], "one point")
    assert "<polyline" in one and "nan" not in one.lower()
    assert pages.fmt_time(None) == "—" and pages.fmt_prob(float("nan")) == "—"
