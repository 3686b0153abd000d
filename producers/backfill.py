"""Offline backfill: score an event file with no Kafka, exactly as the worker would.

Events go through ``models.pipeline.step_batch`` (the worker's per-event step,
batched: equal to calling ``step`` per event) in file order, which is
per-patient arrival order, so the scores equal the stream's.
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
from trialwatch.models.pipeline import BatchResult, step_batch
from trialwatch.models.scorer import Scorer
from trialwatch.models.state import Outcome, PatientState
from trialwatch.producers.files import read_events
from trialwatch.schemas import files as avro_files

# Records per step_batch: large enough that LightGBM's per-call cost vanishes,
# small enough that a batch's results stay a few MB.
BATCH_RECORDS = 2_000


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
    batch_size: int = BATCH_RECORDS,
) -> Iterator[BackfillRecord]:
    """Replay ``(number, event, error)`` records through the worker's step, one
    ``step_batch`` per ``batch_size`` records (one LightGBM call per wave instead
    of one per event; memory bounded by the batch). ``states`` is updated as
    each batch's records are yielded."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    states = {} if states is None else states
    batch: list[tuple[int, dict | None, str | None]] = []
    for rec in records:
        batch.append(rec)
        if len(batch) >= batch_size:
            yield from _backfill_batch(batch, scorer, policy, states)
            batch = []
    yield from _backfill_batch(batch, scorer, policy, states)


def _backfill_batch(
    batch: list[tuple[int, dict | None, str | None]],
    scorer: Any,
    policy: AlertPolicy,
    states: dict[str, PatientState],
) -> Iterator[BackfillRecord]:
    """The batch's records in file order: unreadable ones dead-lettered as read,
    the events through one ``step_batch``."""
    events = [event for _, event, error in batch if error is None and event is not None]
    results = iter(step_batch(states, events, scorer, policy))
    for number, event, error in batch:
        if error is not None or event is None:
            yield BackfillRecord(number, "dead_lettered", reason=error or "empty record")
        else:
            yield _record(number, event, next(results), states)


def _record(
    number: int, event: dict, result: BatchResult, states: dict[str, PatientState]
) -> BackfillRecord:
    """One event's record; an applied event's state becomes the patient's."""
    if isinstance(result, ModelError):
        return BackfillRecord(number, "dead_lettered", reason=f"{result.reason}: {result}")
    if result.outcome is Outcome.DUPLICATE:
        return BackfillRecord(number, result.label)
    states[event["patient_id"]] = result.state
    return BackfillRecord(
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
