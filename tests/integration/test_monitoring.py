"""Realized accuracy in the stream equals ``trialwatch evaluate`` on the same events."""

from __future__ import annotations

import asyncio
import time
import urllib.request

import pytest

from tests.integration.worker import Namespace, Worker, publish_events, read_topic, wait_settled
from trialwatch.models.alerts import AlertPolicy
from trialwatch.models.scorer import Scorer
from trialwatch.producers.evaluation import evaluate_events
from trialwatch.producers.simulator import PROFILES, simulate
from trialwatch.schemas import codec
from trialwatch.streams.admin import ensure_topics

pytestmark = pytest.mark.integration

EXACT = ("n", "positives", "window_weeks", "newest_week_start")
FLOATS = (
    "realized_rate",
    "mean_probability",
    "brier",
    "calibration_in_the_large",
    "calibration_slope",
    "roc_auc",
    "pr_auc",
)


def latest_metrics(ns: Namespace) -> dict[bytes, dict]:
    """The newest model-metrics record per key (offset order within a partition)."""
    latest: dict[bytes, tuple[int, dict]] = {}
    for record in asyncio.run(read_topic(ns.bootstrap, ns.settings.model_metrics_topic)):
        if record.key not in latest or record.offset > latest[record.key][0]:
            latest[record.key] = (record.offset, codec.decode(record.value, "ModelMetrics"))
    return {key: value for key, (_, value) in latest.items()}


def offline_metrics(events: list[dict], model_dir) -> dict[bytes, dict]:
    scorer = Scorer.load(model_dir)
    offline = evaluate_events(((i, e, None) for i, e in enumerate(events)), scorer, AlertPolicy())
    return {f"{v}|{t}".encode(): w.metrics_record() for (v, t), w in offline.outcomes.items()}


def wait_published(ns: Namespace, counts: dict[bytes, int], timeout: float = 60.0) -> dict:
    """model-metrics once it shows ``counts`` (the worker publishes every 2 s)."""
    deadline = time.monotonic() + timeout
    while True:
        streamed = latest_metrics(ns)
        if {k: m["n"] for k, m in streamed.items()} == counts or time.monotonic() > deadline:
            return streamed
        time.sleep(1.0)


def test_stream_realized_metrics_equal_the_offline_evaluation(
    kafka_bootstrap, redis_url, quick_model_dir, tmp_path
):
    events = simulate(PROFILES["demo"]).events
    ns = Namespace(kafka_bootstrap, redis_url, quick_model_dir, tmp_path)
    asyncio.run(ensure_topics(ns.settings))
    worker = Worker(ns).start()
    try:
        asyncio.run(publish_events(kafka_bootstrap, ns.settings.visit_events_topic, events))
        worker.wait_outcomes(len(events))
        wait_settled(ns)
        wait_settled(ns, topic=ns.settings.model_outcomes_topic)
        expected = offline_metrics(events, quick_model_dir)
        streamed = wait_published(ns, {k: m["n"] for k, m in expected.items()})
        status, card = worker.get("/model")
        with urllib.request.urlopen(worker.url + "/metrics") as response:
            exported = response.read().decode()
    finally:
        worker.stop()

    scorer = Scorer.load(quick_model_dir)
    assert len(expected) >= 3 and sum(m["n"] for m in expected.values()) > 300
    assert streamed.keys() == expected.keys()
    for key, want in expected.items():
        got = streamed[key]
        for name in EXACT:
            assert got[name] == want[name], (key, name)
        for name in FLOATS:
            if want[name] is None:
                assert got[name] is None, (key, name)
            else:
                assert got[name] == pytest.approx(want[name], rel=1e-9, abs=1e-12), (key, name)
    assert status == 200 and len(card["monitoring"]["realized"]) == len(expected)
    assert "trialwatch_realized_roc_auc{" in exported
    assert f'trialwatch_model_test_roc_auc{{model_version="{scorer.version}"}}' in exported
