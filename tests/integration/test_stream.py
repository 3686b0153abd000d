"""simulate -> worker -> scores/alerts on the real broker and Redis (issue: stream processor)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
import redis.asyncio as aioredis

from tests.integration.worker import (
    Namespace,
    Worker,
    publish_events,
    publish_raw,
    read_topic,
    scores_on_topic,
    wait_settled,
)
from tests.kafka_util import create_topics
from trialwatch.models.alerts import budget_week
from trialwatch.models.kri import kri_rows, site_summary
from trialwatch.models.scorer import Scorer
from trialwatch.producers.backfill import backfill_events
from trialwatch.producers.files import write_avro
from trialwatch.producers.simulator import PROFILES, simulate
from trialwatch.producers.sites import offline_kris
from trialwatch.schemas import codec as avro
from trialwatch.streams.dashstore import DashStore
from trialwatch.streams.settings import load as load_settings
from trialwatch.streams.workerproc import free_port


@pytest.fixture(scope="module")
def demo_events() -> list[dict]:
    return simulate(PROFILES["demo"]).events


def offline_records(events: list[dict]):
    from tests.conftest import trained_model_path
    from trialwatch.models.alerts import AlertPolicy as Policy

    scorer = Scorer.load(trained_model_path())
    policy = Policy(cooldown_days=load_settings({}).alert_cooldown_days)
    return list(backfill_events(((i, e, None) for i, e in enumerate(events)), scorer, policy))


def bad_messages(events: list[dict]) -> list[tuple[bytes, bytes, str]]:
    """(key, value, expected DLQ reason) for input the worker must dead-letter."""
    valid = avro.encode(events[0])
    stranger = dict(events[1], patient_id="NEVER-ENROLLED", event_id="stranger-1")
    if stranger["event_type"] == "ENROLLED":
        stranger = dict(events[-1], patient_id="NEVER-ENROLLED", event_id="stranger-1")
    stranger["event_type"] = "CONTACT_ATTEMPT"
    stranger.update(reached=False)
    return [
        (b"x", b"not avro at all", "bad_marker"),
        (events[0]["patient_id"].encode(), valid[:-3], "truncated"),
        (
            events[0]["patient_id"].encode(),
            valid[:2] + b"\x00" * 8 + valid[10:],
            "unknown_fingerprint",
        ),
        (b"NEVER-ENROLLED", avro.encode(stranger), "not_enrolled"),
        (b"someone-else", valid, "key_mismatch"),
    ]


BUDGET = 2  # HIGH pages per site and event-time week


@pytest.fixture(scope="module")
def deployment(kafka_bootstrap, redis_url, quick_model_dir, tmp_path_factory, demo_events):
    ns = Namespace(kafka_bootstrap, redis_url, quick_model_dir, tmp_path_factory.mktemp("ns"))
    s = ns.settings
    asyncio.run(
        create_topics(
            kafka_bootstrap,
            [s.visit_events_topic, s.risk_scores_topic, s.risk_alerts_topic, s.dlq_topic],
            ns.partitions,
        )
    )
    worker = Worker(ns, TRIALWATCH_ALERT_BUDGET=str(BUDGET)).start()
    bad = bad_messages(demo_events)
    asyncio.run(publish_events(kafka_bootstrap, s.visit_events_topic, demo_events))
    asyncio.run(publish_raw(kafka_bootstrap, s.visit_events_topic, [(k, v) for k, v, _ in bad]))
    counts = worker.wait_outcomes(len(demo_events) + len(bad))
    wait_settled(ns)
    yield ns, worker, counts, bad
    worker.stop()


def test_every_event_ends_in_exactly_one_outcome(deployment, demo_events):
    _ns, _worker, counts, bad = deployment
    assert sum(counts.values()) == len(demo_events) + len(bad)
    assert counts["dead_lettered"] == len(bad)
    # The world records some late data entry after a withdrawal: recorded, not scored.
    expected = Counter(r.outcome for r in offline_records(demo_events))
    assert {k: v for k, v in counts.items() if k != "dead_lettered"} == dict(expected)


def test_dead_letters_keep_bytes_and_reason(deployment):
    ns, _worker, _counts, bad = deployment
    records = asyncio.run(read_topic(ns.bootstrap, ns.settings.dlq_topic))
    got = Counter((r.value, dict(r.headers)["reason"].decode()) for r in records)
    assert got == Counter((v, reason) for _k, v, reason in bad)


def test_stream_scores_equal_the_offline_backfill(deployment, demo_events, quick_model_dir):
    ns, _worker, counts, _bad = deployment
    records = asyncio.run(read_topic(ns.bootstrap, ns.settings.risk_scores_topic))
    stream = {}
    for record in records:
        score = avro.decode(record.value, "RiskScore")
        assert record.key == score["patient_id"].encode()
        stream[score["event_id"]] = score
    assert len(stream) == counts["scored"]

    offline = {r.score["event_id"]: r.score for r in offline_records(demo_events) if r.score}
    assert stream.keys() == offline.keys()
    worst = 0.0
    for event_id, expected in offline.items():
        got = stream[event_id]
        for name in ("probability", "clv", "value_at_risk"):
            worst = max(worst, abs(got[name] - expected[name]))
        assert got["tier"] == expected["tier"]
        assert got["model_version"] == expected["model_version"]
    assert worst <= 1e-9


def test_replaying_the_same_file_changes_no_score_and_raises_no_new_alert(
    deployment, demo_events, tmp_path
):
    """Replay determinism as operators do it: the same history file through
    ``trialwatch replay`` (the worker already saw every event once)."""
    ns, worker, counts, _bad = deployment
    s = ns.settings
    before = asyncio.run(read_topic(ns.bootstrap, s.risk_alerts_topic))
    assert before, "the demo world should raise alerts"
    ids = [avro.decode(r.value, "RiskAlert")["alert_id"] for r in before]
    assert len(ids) == len(set(ids))
    scores_before = scores_on_topic(ns)
    assert len(scores_before) == counts["scored"]
    history = tmp_path / "history.avro"
    write_avro(demo_events, history)

    done = subprocess.run(
        [sys.executable, "-m", "trialwatch.streams", "replay", str(history)],
        env=ns.env(), capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"sent {len(demo_events):,} events" in " ".join(done.stderr.split())  # rich wraps
    after_counts = worker.wait_outcomes(sum(counts.values()) + len(demo_events))
    wait_settled(ns)
    assert after_counts["duplicate"] - counts.get("duplicate", 0) == len(demo_events)
    after = asyncio.run(read_topic(ns.bootstrap, s.risk_alerts_topic))
    assert len(after) == len(before)
    assert scores_on_topic(ns) == scores_before


def test_patient_view_matches_the_last_score_on_the_topic(deployment):
    ns, worker, _counts, _bad = deployment
    records = asyncio.run(read_topic(ns.bootstrap, ns.settings.risk_scores_topic))
    last = {}
    for record in records:
        score = avro.decode(record.value, "RiskScore")
        last[score["patient_id"]] = score
    patient_id, expected = sorted(last.items())[len(last) // 2]
    status, body = worker.get(f"/patients/{patient_id}")
    assert status == 200
    assert body["state"]["patient_id"] == patient_id
    assert body["latest_score"]["event_id"] == expected["event_id"]
    assert body["latest_score"]["probability"] == pytest.approx(expected["probability"], abs=1e-12)
    assert worker.get("/patients/nobody-knows")[0] == 404


def test_score_endpoint_scores_a_posted_history(deployment, demo_events):
    _ns, worker, _counts, _bad = deployment
    patient = demo_events[0]["patient_id"]
    history = [e for e in demo_events if e["patient_id"] == patient][:6]
    status, body = worker.post("/score", {"events": history})
    assert status == 200, body
    assert 0.0 <= body["score"]["probability"] <= 1.0
    assert body["score"]["clv"] >= 0
    assert body["reasons"] and all(r["text"] for r in body["reasons"])
    assert worker.post("/score", {"events": [{"patient_id": ""}]})[0] == 400


def test_metrics_endpoint_exposes_counters(deployment):
    _ns, worker, _counts, _bad = deployment
    with __import__("urllib.request").request.urlopen(worker.url + "/metrics") as response:
        text = response.read().decode()
    for name in (
        "trialwatch_events_in_total",
        "trialwatch_event_outcomes_total",
        "trialwatch_dead_lettered_total",
        "trialwatch_scoring_seconds_bucket",
        "trialwatch_redis_fallback_total",
        "trialwatch_consumer_lag",
    ):
        assert name in text, name


def _settled_sites(ns: Namespace) -> None:
    for topic in (ns.settings.site_deltas_topic, ns.settings.site_kris_topic):
        wait_settled(ns, topic=topic)


def test_site_kris_from_the_stream_equal_the_offline_computation(deployment, demo_events):
    """After the whole world AND its replay (the test above): each site's last
    numbers on site-kris and each trial's KRI rows in the dashboard's projection
    equal the same folds offline over the file, each event once."""
    ns, _worker, _counts, _bad = deployment
    _settled_sites(ns)
    offline = offline_kris(demo_events)
    records = asyncio.run(read_topic(ns.bootstrap, ns.settings.site_kris_topic))
    last = {}
    for record in records:
        summary = avro.decode(record.value, "SiteSummary")
        assert record.key == summary["trial_id"].encode()
        last[(summary["trial_id"], summary["site_id"])] = summary
    expected = {
        (trial_id, site_id): site_summary(book)
        for trial_id, kris in offline.items()
        for site_id, book in kris.site_books.items()
    }
    assert last == expected and len(expected) >= 4

    async def projected() -> dict[str, list[dict]]:
        store = DashStore(aioredis.from_url(ns.redis_url), ns.settings.app_id)
        try:
            return {trial_id: await store.site_rows(trial_id) for trial_id in offline}
        finally:
            await store.close()

    for trial_id, rows in _eventually(
        projected, lambda got: all(r["kris"] for v in got.values() for r in v)
    ).items():
        want = kri_rows(offline[trial_id].book)
        assert [_kri_view(r) for r in rows] == [_kri_view(r) for r in want]


def _kri_view(row: dict) -> tuple:
    kris = {name: (r["value"], r["flag"]) for name, r in row["kris"].items()}
    return row["site_id"], row["status"], row["active"], kris


def _eventually(fetch, ready, timeout_s: float = 30.0):
    """The projection is flushed every 0.2 s: poll it until ``ready``."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = asyncio.run(fetch())
        if ready(got) or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def test_critical_alerts_always_page_and_high_ones_within_the_weekly_budget(deployment):
    ns, _worker, _counts, _bad = deployment
    s = ns.settings
    wait_settled(ns, topic=s.risk_alerts_topic)
    alerts = [
        avro.decode(r.value, "RiskAlert")
        for r in asyncio.run(read_topic(ns.bootstrap, s.risk_alerts_topic))
    ]
    pages = [
        avro.decode(r.value, "RiskAlert")
        for r in asyncio.run(read_topic(ns.bootstrap, s.risk_pages_topic))
    ]
    paged = {p["alert_id"] for p in pages}
    assert len(paged) == len(pages), "an alert paged twice"
    assert {a["alert_id"] for a in alerts if a["tier"] == "CRITICAL"} <= paged
    high = Counter()
    weeks = Counter()
    for a in alerts:
        if a["tier"] == "HIGH":
            week = (a["trial_id"], a["site_id"], budget_week(a["event_time"]))
            weeks[week] += 1
            high[week] += a["alert_id"] in paged
    assert all(n <= BUDGET for n in high.values())
    # The budget is used where it binds: every week with more HIGH alerts pages BUDGET.
    assert all(high[w] == BUDGET for w, n in weeks.items() if n >= BUDGET)
    assert any(n > BUDGET for n in weeks.values()), "the world should exceed the budget"


def _redis_server(port: int, workdir) -> subprocess.Popen:
    return subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def test_health_degraded_while_redis_is_down_and_ok_after(
    kafka_bootstrap, quick_model_dir, tmp_path, demo_events
):
    port = free_port()
    redis = _redis_server(port, tmp_path)
    ns = Namespace(kafka_bootstrap, f"redis://127.0.0.1:{port}/0", quick_model_dir, tmp_path)
    s = ns.settings
    topics = [s.visit_events_topic, s.risk_scores_topic, s.risk_alerts_topic, s.dlq_topic]
    asyncio.run(create_topics(kafka_bootstrap, topics, ns.partitions))
    worker = Worker(ns)
    try:
        assert worker.start().get("/health")[1]["status"] == "ok"
        redis.send_signal(signal.SIGKILL)
        redis.wait()
        status, body = worker.get("/health")
        assert (status, body["status"]) == (200, "degraded")
        assert any("redis" in reason for reason in body["reasons"])
        half = demo_events[: len(demo_events) // 2]
        asyncio.run(publish_events(kafka_bootstrap, s.visit_events_topic, half))
        counts = worker.wait_outcomes(len(half))  # scoring goes on without Redis
        assert counts["scored"] > 0
        redis = _redis_server(port, tmp_path)
        for _ in range(40):
            if worker.get("/health")[1]["status"] == "ok":
                break
            asyncio.run(asyncio.sleep(0.25))
        assert worker.get("/health")[1]["status"] == "ok"
    finally:
        worker.stop()
        redis.terminate()
        redis.wait()
