"""Offline backfill: score an event file with no Kafka, exactly as the worker would.

Events go through ``models.pipeline.step`` (the worker's per-event function) in
file order, which is per-patient arrival order, so the scores equal the stream's.
Outputs use the topics' schemas: Avro container files of RiskScore and RiskAlert
(plus JSON lines for people), and a dead-letter report with record numbers.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trialwatch.models.alerts import AlertPolicy
from trialwatch.models.exceptions import ModelError
from trialwatch.models.pipeline import step
from trialwatch.models.scorer import Scorer
from trialwatch.models.state import Outcome, PatientState
from trialwatch.producers.files import read_events
from trialwatch.schemas import files as avro_files


@dataclass
class BackfillRecord:
    """What one input record produced."""

    number: int
    outcome: str
    score: dict | None = None
    alert: dict | None = None
    reason: str | None = None
    trial_id: str | None = None
    matured: tuple = ()  # models.outcomes.MaturedOutcome of earlier predictions
    features: Any = None  # the scored feature row, for drift


def backfill_events(
    records: Iterable[tuple[int, dict | None, str | None]],
    scorer: Any,
    policy: AlertPolicy,
    states: dict[str, PatientState] | None = None,
) -> Iterator[BackfillRecord]:
    """Replay ``(number, event, error)`` records through the worker's step function."""
    states = {} if states is None else states
    for number, event, error in records:
        if error is not None or event is None:
            yield BackfillRecord(number, "dead_lettered", reason=error or "empty record")
            continue
        patient_id = event["patient_id"]
        try:
            result = step(states.get(patient_id), event, scorer, policy)
        except ModelError as exc:
            yield BackfillRecord(number, "dead_lettered", reason=f"{exc.reason}: {exc}")
            continue
        if result.outcome is Outcome.DUPLICATE:
            yield BackfillRecord(number, result.label)
            continue
        states[patient_id] = result.state
        yield BackfillRecord(
            number,
            result.label,
            result.score,
            result.alert,
            trial_id=result.state.trial_id,
            matured=result.matured,
            features=result.features,
        )


def backfill_file(path: Path, out_dir: Path, model_dir: Path, policy: AlertPolicy) -> dict:
    """Score ``path`` into ``out_dir``; return the report (also written as report.json)."""
    started = time.perf_counter()
    scorer = Scorer.load(model_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts: Counter[str] = Counter()
    scores: list[dict] = []
    alerts: list[dict] = []
    with open(out_dir / "dead_letter.jsonl", "w") as dead:
        records = ((r.number, r.event, r.error) for r in read_events(path))
        for rec in backfill_events(records, scorer, policy):
            counts[rec.outcome] += 1
            if rec.score is not None:
                scores.append(rec.score)
            if rec.alert is not None:
                alerts.append(rec.alert)
            if rec.reason is not None:
                dead.write(json.dumps({"record": rec.number, "reason": rec.reason}) + "\n")
    avro_files.write_container(scores, out_dir / "scores.avro", "RiskScore")
    avro_files.write_container(alerts, out_dir / "alerts.avro", "RiskAlert")
    _write_jsonl(scores, out_dir / "scores.jsonl")
    _write_jsonl(alerts, out_dir / "alerts.jsonl")
    report = {
        "input": str(path),
        "model_version": scorer.version,
        "records": sum(counts.values()),
        "outcomes": dict(counts),
        "scores": len(scores),
        "alerts": len(alerts),
        "seconds": round(time.perf_counter() - started, 3),
        "out_dir": str(out_dir),
    }
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    return report


def _write_jsonl(records: list[dict], path: Path) -> None:
    with open(path, "w") as out:
        for record in records:
            out.write(json.dumps(record) + "\n")
