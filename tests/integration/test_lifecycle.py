"""The model lifecycle on a real worker: hot swap, shadow, rollback, recalibration."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from tests.integration.worker import (
    Namespace,
    Worker,
    publish_events,
    read_topic,
    scores_on_topic,
    wait_settled,
)
from tests.worlds import SHIFTED_TRIAL, split_months
from trialwatch.models import artifacts
from trialwatch.models.alerts import AlertPolicy
from trialwatch.models.recalibration import Calibration
from trialwatch.models.scorer import Scorer
from trialwatch.producers.backfill import backfill_events
from trialwatch.producers.files import write_jsonl
from trialwatch.producers.recalibration import recalibrate_file
from trialwatch.producers.simulator import PROFILES, simulate
from trialwatch.schemas import codec
from trialwatch.streams import control, lifecycle
from trialwatch.streams.admin import ensure_topics

pytestmark = pytest.mark.integration
POLICY = AlertPolicy()


def two_versions(model_dir: Path, root: Path) -> tuple[str, str]:
    """The session's model as version A, and B: the same trees with a calibration
    that says 1.5x the risk (a real, different artifact, cheap to make)."""
    a = model_dir.name
    b = f"{a}-b"
    shutil.copytree(model_dir, root / a)
    shutil.copytree(model_dir, root / b)
    cal = json.loads((root / b / "calibration.json").read_text())
    cal["y"] = [min(y * 1.5, 1.0) for y in cal["y"]]
    (root / b / "calibration.json").write_text(json.dumps(cal))
    artifacts.publish_latest(root, a)
    return a, b


def offsets_of(ns: Namespace) -> dict[str, tuple[int, int]]:
    """event_id -> (partition, offset) of the input."""
    out = {}
    for record in asyncio.run(read_topic(ns.bootstrap, ns.settings.visit_events_topic)):
        out[codec.decode(record.value)["event_id"]] = (record.partition, record.offset)
    return out


def segments(versions: list[str]) -> list[str]:
    """[a, a, b, b, a] -> [a, b, a]."""
    return [v for i, v in enumerate(versions) if i == 0 or versions[i - 1] != v]


def offline_scores(events: list[dict], scorer: Scorer) -> dict[str, dict]:
    records = ((i, e, None) for i, e in enumerate(events))
    return {
        r.score["event_id"]: r.score
        for r in backfill_events(records, scorer, AlertPolicy())
        if r.score is not None
    }


def test_promote_and_rollback_under_load_switch_each_partition_at_one_offset(
    kafka_bootstrap, redis_url, quick_model_dir, tmp_path
):
    root = tmp_path / "models"
    root.mkdir()
    a, b = two_versions(quick_model_dir, root)
    events = simulate(PROFILES["demo"]).events
    ns = Namespace(kafka_bootstrap, redis_url, root, tmp_path)
    s = ns.settings
    asyncio.run(ensure_topics(s))
    asyncio.run(lifecycle.shadow(s, b))  # B shadows A from the first event on
    history = [e for e in events if e["patient_id"] == events[0]["patient_id"]]
    worker = Worker(ns).start()
    try:
        before = worker.post("/score", {"events": history})
        publisher = threading.Thread(
            target=lambda: asyncio.run(
                publish_events(kafka_bootstrap, s.visit_events_topic, events)
            )
        )
        publisher.start()
        worker.wait_outcomes(len(events) // 4)
        asyncio.run(lifecycle.promote(s, b))
        worker.wait_outcomes(len(events) // 2)
        asyncio.run(lifecycle.rollback(s))
        publisher.join()
        worker.wait_outcomes(len(events))
        wait_settled(ns)
        after = worker.post("/score", {"events": history})
        status, card = worker.get("/model")
    finally:
        worker.stop()

    position = offsets_of(ns)
    scores = scores_on_topic(ns)
    by_partition: dict[int, list[tuple[int, str]]] = {}
    for (_, event_id), score in scores.items():
        partition, offset = position[event_id]
        by_partition.setdefault(partition, []).append((offset, score["model_version"]))
    assert len(by_partition) == ns.partitions
    for partition, rows in by_partition.items():
        assert segments([v for _, v in sorted(rows)]) == [a, b, a], partition

    # Each event scored once, by one version, exactly as that version scores it offline.
    offline = {v: offline_scores(events, Scorer.load(root / v)) for v in (a, b)}
    assert len(scores) == len(offline[a])
    for (_, event_id), score in scores.items():
        want = offline[score["model_version"]][event_id]
        for name in ("probability", "tier", "clv", "retention", "model_version"):
            assert score[name] == want[name], (event_id, name)

    # The shadow scored every event the champion A scored, as B, and never alerted.
    shadow = {}
    for record in asyncio.run(read_topic(ns.bootstrap, s.shadow_scores_topic)):
        score = codec.decode(record.value, "RiskScore")
        shadow[score["event_id"]] = score
    scored_by_a = {e for (_, e), sc in scores.items() if sc["model_version"] == a}
    assert set(shadow) == scored_by_a
    assert all(sc["model_version"] == b for sc in shadow.values())
    assert all(shadow[e]["probability"] == offline[b][e]["probability"] for e in shadow)
    alerts = [
        codec.decode(r.value, "RiskAlert")
        for r in asyncio.run(read_topic(ns.bootstrap, s.risk_alerts_topic))
    ]
    assert alerts
    score_of = {event_id: sc for (_, event_id), sc in scores.items()}
    for alert in alerts:
        assert alert["model_version"] == score_of[alert["event_id"]]["model_version"]

    # Rollback restores A's answers exactly; /model says what is served.
    assert before == after and before[0] == 200
    assert status == 200 and card["serving"]["champion"] == a
    assert card["serving"]["challenger"] == b
    assert (root / "LATEST").read_text().strip() == a


# A world the model was not trained for (tests/producers/test_recalibration.py
# measures the calibration this fixes on the full-size version of it).
SHIFTED = replace(SHIFTED_TRIAL, n_participants=1_200)


def test_the_worker_recalibrates_a_shifted_trial_as_the_offline_command_does(
    kafka_bootstrap, redis_url, quick_model_dir, tmp_path
):
    """The first months of a shifted trial: once the worker has consumed them, it
    fits the trial's map, equal to ``trialwatch recalibrate`` on the same file, and
    every worker scores the events that follow through it."""
    root = tmp_path / "models"
    root.mkdir()
    shutil.copytree(quick_model_dir, root / quick_model_dir.name)
    artifacts.publish_latest(root, quick_model_dir.name)
    world = simulate(SHIFTED)
    first, later, _ = split_months(world.events)
    (trial,) = {e["trial_id"] for e in world.events}
    history = tmp_path / "first-months.jsonl"
    write_jsonl(first, history)
    offline = recalibrate_file(history, root, trial, AlertPolicy())["proposal"].calibration
    assert offline is not None

    ns = Namespace(kafka_bootstrap, redis_url, root, tmp_path)
    s = ns.settings
    asyncio.run(ensure_topics(s))
    worker = Worker(ns).start()
    try:
        asyncio.run(publish_events(kafka_bootstrap, s.visit_events_topic, first))
        worker.wait_outcomes(len(first))
        card: dict = {}
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            card = worker.get("/model")[1]
            if card["serving"]["calibrations"]:
                break
            time.sleep(1.0)
        next_month = later[:1_500]
        asyncio.run(publish_events(kafka_bootstrap, s.visit_events_topic, next_month))
        worker.wait_outcomes(len(first) + len(next_month))
        wait_settled(ns)
    finally:
        worker.stop()

    served = card["serving"]["calibrations"]
    assert len(served) == 1, served
    (cal,) = served
    assert cal["version"] == offline.version == f"{trial}.r1"
    assert cal["a"] == pytest.approx(offline.a, abs=1e-9)
    assert cal["b"] == pytest.approx(offline.b, abs=1e-9)
    assert cal["report"]["fitted_on"] == offline.report["fitted_on"]
    state = asyncio.run(control.read_state(s))
    assert state.calibrations[(quick_model_dir.name, trial)].a == pytest.approx(offline.a)
    written = root / quick_model_dir.name / "calibrations" / trial / f"{cal['version']}.json"
    assert json.loads(written.read_text())["a"] == cal["a"]

    # What followed was scored through the map, exactly as the model with the
    # worker's map scores it offline (the worker's a and b equal the offline fit's
    # to 1e-9, not bitwise: its windows sum floats in arrival order).
    scorer = Scorer.load(root)
    recalibrated = scorer.with_calibrations({trial: Calibration.from_json(cal)})
    want = offline_scores_after(first, next_month, scorer, recalibrated)
    scores = {event_id: sc for (_, event_id), sc in scores_on_topic(ns).items()}
    for event in next_month:
        got = scores.get(event["event_id"])
        if got is None:
            continue  # an event that scores nothing (a duplicate, a terminal event)
        assert got["calibration_version"] == cal["version"]
        assert got["probability"] == want[event["event_id"]]["probability"]
        assert got["tier"] == want[event["event_id"]]["tier"]
    assert sum(e["event_id"] in scores for e in next_month) > 1_000


def offline_scores_after(first, then, scorer, recalibrated) -> dict[str, dict]:
    """Scores of ``then`` by ``recalibrated``, on the states ``first`` left under ``scorer``."""
    states: dict = {}
    for _ in backfill_events(
        ((i, e, None) for i, e in enumerate(first)), scorer, AlertPolicy(), states
    ):
        pass
    records = ((i, e, None) for i, e in enumerate(then))
    return {
        r.score["event_id"]: r.score
        for r in backfill_events(records, recalibrated, AlertPolicy(), states)
        if r.score is not None
    }
