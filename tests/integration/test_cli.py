"""The trialwatch commands operators run: simulate, replay, stats, backfill, alerts."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from tests.integration.worker import read_topic
from trialwatch.producers.files import write_jsonl
from trialwatch.producers.simulator import PROFILES, simulate
from trialwatch.schemas import codec

TRIALWATCH = str(Path(sys.executable).with_name("trialwatch"))


def run_cli(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [TRIALWATCH, *args], env=env, capture_output=True, text=True, timeout=timeout
    )


# rich takes output for a terminal when one of these says so; the CLI runs on pipes here
TERMINAL_OVERRIDES = ("FORCE_COLOR", "FORCE_TERMINAL", "TTY_COMPATIBLE", "TTY_INTERACTIVE")


def cli_env(kafka_bootstrap: str, **extra: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if k not in TERMINAL_OVERRIDES},
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TRIALWATCH_TOPIC_PREFIX": f"cli{uuid.uuid4().hex[:8]}.",
        "TRIALWATCH_PARTITIONS": "4",
        **extra,
    }


def test_simulate_publishes_every_event_keyed_by_patient(kafka_bootstrap):
    env = cli_env(kafka_bootstrap)
    done = run_cli("simulate", "--profile", "demo", env=env)
    assert done.returncode == 0, done.stderr
    expected = simulate(PROFILES["demo"]).events
    assert f"sent {len(expected):,} events" in done.stderr
    topic = env["TRIALWATCH_TOPIC_PREFIX"] + "visit-events"
    records = asyncio.run(read_topic(kafka_bootstrap, topic))
    decoded = [codec.decode(r.value) for r in records]
    assert len(decoded) == len(expected)
    assert all(r.key == e["patient_id"].encode() for r, e in zip(records, decoded, strict=True))
    assert sorted(e["event_id"] for e in decoded) == sorted(e["event_id"] for e in expected)
    assert len({r.partition for r in records}) == 4


def test_replay_reports_bad_lines_and_sends_the_rest(kafka_bootstrap, tmp_path):
    events = simulate(PROFILES["demo"]).events[:500]
    # a path longer than any terminal, and a narrow COLUMNS: the report on the
    # stderr pipe must still be whole lines, whatever the machine's tmp path is
    path = tmp_path / ("a-long-directory-name-" * 8) / "history.jsonl"
    path.parent.mkdir()
    write_jsonl(events, path)
    lines = path.read_text().splitlines()
    lines[9] = "{broken"
    lines[19] = json.dumps({**events[19], "event_type": "TELEPORTED"})
    lines[29] = json.dumps({**events[29], "event_time": 42})
    path.write_text("\n".join(lines) + "\n")
    env = cli_env(kafka_bootstrap, COLUMNS="40")

    done = run_cli("replay", str(path), "--start", "5", env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert any(line.startswith(f"replay {path}: sent 492 events in ") for line in lines)
    assert any(line.endswith("; rejected 3") for line in lines)
    assert any(line.startswith("  e.g. record 10: malformed_json") for line in lines)
    assert any(line.startswith("  e.g. record 20: ") and "event_type" in line for line in lines)
    topic = env["TRIALWATCH_TOPIC_PREFIX"] + "visit-events"
    records = asyncio.run(read_topic(kafka_bootstrap, topic))
    sent_ids = {codec.decode(r.value)["event_id"] for r in records}
    good = {e["event_id"] for i, e in enumerate(events) if i >= 5 and i not in (9, 19, 29)}
    assert sent_ids == good


def test_replay_of_a_missing_file_is_one_clear_line(kafka_bootstrap):
    done = run_cli("replay", "/no/such/file.jsonl", env=cli_env(kafka_bootstrap))
    assert done.returncode != 0
    assert "no such file" in (done.stderr + done.stdout)
    assert "Traceback" not in done.stderr


def test_stats_prints_dropout_per_phase_with_targets(kafka_bootstrap):
    done = run_cli("stats", "--profile", "demo", env=cli_env(kafka_bootstrap))
    assert done.returncode == 0, done.stderr
    assert "dropout, phase" in done.stdout and "label base rate" in done.stdout


def test_backfill_needs_no_kafka(tmp_path, quick_model_dir):
    events = simulate(PROFILES["demo"]).events[:800]
    path = tmp_path / "events.jsonl"
    write_jsonl(events, path)
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}  # nothing listens there
    out = tmp_path / "out"
    done = run_cli(
        "backfill", str(path), "--out", str(out), "--model", str(quick_model_dir), env=env
    )
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["records"] == 800 and report["scores"] > 0
    assert (out / "scores.avro").exists() and (out / "alerts.jsonl").exists()
