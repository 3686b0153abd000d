"""Component benchmarks run by ``make bench`` before the stream benchmark.

Medians of repeated runs, measured side by side in one process: Avro codec
(fastavro vs the reference ``avro`` package), the patient table's state codec
(the v2 layout against v3), the simulator, state + features,
the scorer (single row, batch, explanation), the offline backfill (the per-event
step as before against ``step_batch``), and replay publishing to Kafka. Long
stages print a progress line on stderr every few seconds.
"""

from __future__ import annotations

import io
import statistics
import sys
import time
import uuid
from pathlib import Path

import numpy as np

from bench.progress import Progress
from trialwatch.schemas import codec


def _median_time(fn, repeats: int = 5, clock=time.perf_counter) -> float:
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return statistics.median(times)


def codec_bench(events: list[dict]) -> dict:
    import avro.io
    import avro.schema

    from trialwatch.schemas import registry

    sample = events[:20_000]
    encoded = [codec.encode(e) for e in sample]
    enc = _median_time(lambda: [codec.encode(e) for e in sample]) / len(sample)
    dec = _median_time(lambda: [codec.decode(b) for b in encoded]) / len(sample)
    ref_schema = avro.schema.parse(registry.current("VisitEvent").path.read_text())
    writer, reader = avro.io.DatumWriter(ref_schema), avro.io.DatumReader(ref_schema)
    ref_sample = sample[:2_000]
    from datetime import UTC, datetime

    def as_ref(e):
        r = dict(e)
        r["event_time"] = datetime.fromtimestamp(e["event_time"] / 1000, UTC)
        if e["scheduled_time"] is not None:
            r["scheduled_time"] = datetime.fromtimestamp(e["scheduled_time"] / 1000, UTC)
        return r

    ref_records = [as_ref(e) for e in ref_sample]

    def ref_encode():
        for r in ref_records:
            writer.write(r, avro.io.BinaryEncoder(io.BytesIO()))

    bodies = [b[10:] for b in encoded[:2_000]]

    def ref_decode():
        for body in bodies:
            reader.read(avro.io.BinaryDecoder(io.BytesIO(body)))

    ref_enc = _median_time(ref_encode, 3) / len(ref_sample)
    ref_dec = _median_time(ref_decode, 3) / len(ref_sample)
    return {
        "encode_us": round(enc * 1e6, 2),
        "decode_us": round(dec * 1e6, 2),
        "reference_avro_encode_us": round(ref_enc * 1e6, 2),
        "reference_avro_decode_us": round(ref_dec * 1e6, 2),
        "bytes_per_event": round(float(np.mean([len(b) for b in encoded])), 1),
    }


def simulator_bench() -> dict:
    from trialwatch.producers.simulator import PROFILES, simulate

    runs = []
    n = 0
    for i in range(3):
        start = time.perf_counter()
        world = simulate(PROFILES["full"])
        runs.append(time.perf_counter() - start)
        n = len(world.events)
        line = f"  simulator {i + 1}/3: {n:,} events in {runs[-1]:.1f} s"
        print(line, file=sys.stderr, flush=True)
    return {"events": n, "seconds": round(statistics.median(runs), 2),
            "events_per_s": round(n / statistics.median(runs))}  # fmt: skip


def scorer_bench(model_dir: Path, events: list[dict]) -> dict:
    from trialwatch.models.features import build_rows, features
    from trialwatch.models.scorer import Scorer
    from trialwatch.models.state import apply

    scorer = Scorer.load(model_dir)
    sample = events[:20_000]
    states: dict = {}

    def replay():
        states.clear()
        for e in sample:
            states[e["patient_id"]], _ = apply(states.get(e["patient_id"]), e)

    apply_us = _median_time(replay) / len(sample) * 1e6
    state = max(states.values(), key=lambda s: s.n_applied)
    at = state.last_event_time
    feat_us = _median_time(lambda: [features(state, at) for _ in range(10_000)]) / 10_000 * 1e6
    x = features(state, at)
    single = _median_time(lambda: [scorer.score_one(x, state, at) for _ in range(2_000)]) / 2_000
    prob_only = _median_time(lambda: [scorer.probabilities(x[None]) for _ in range(2_000)]) / 2_000
    rows = build_rows(events[:120_000])
    X = rows.X[:100_000]
    batch = _median_time(lambda: scorer.probabilities(X), 3)
    explain = _median_time(lambda: [scorer.explain(x) for _ in range(200)], 3) / 200
    return {
        "apply_us": round(apply_us, 2),
        "features_us": round(feat_us, 2),
        "churn_probability_single_row_us": round(prob_only * 1e6, 1),
        "score_one_us (p + retention curve + CLV)": round(single * 1e6, 1),
        "batch_rows_per_s (calibrated p)": round(len(X) / batch),
        "explain_ms": round(explain * 1e3, 3),
    }


def realistic_states(model_dir: Path, events: list[dict], n_events: int = 20_000) -> list:
    """The states a worker holds after ``n_events`` of the bench's events, open
    predictions included (the backfill's step, with the model)."""
    from trialwatch.models.alerts import AlertPolicy
    from trialwatch.models.scorer import Scorer
    from trialwatch.producers.backfill import backfill_events

    states: dict = {}
    records = ((i, e, None) for i, e in enumerate(events[:n_events]))
    for _ in backfill_events(records, Scorer.load(model_dir), AlertPolicy(), states=states):
        pass
    return list(states.values())


def state_codec_bench(model_dir: Path, events: list[dict], repeats: int = 7) -> dict:
    """µs per state to encode and to decode the patient table's values: the v2
    layout (fastavro over the parallel-array record, what the table wrote before)
    against v3 (``models.state.encode_state``), alternating, median of ``repeats``.
    Each number is one pass over all the states."""
    from trialwatch.models.state import decode_state, encode_state, from_record, to_record

    states = realistic_states(model_dir, events)
    old_bytes = [codec.encode_with(to_record(s), "PatientState", 2) for s in states]
    new_bytes = [encode_state(s) for s in states]
    if [decode_state(b) for b in new_bytes] != states or [
        from_record(codec.decode(b, "PatientState", 2)) for b in old_bytes
    ] != states:
        raise SystemExit("state codec bench: a decoded state differs from the encoded one")
    sides = {
        "v2 encode": lambda: [codec.encode_with(to_record(s), "PatientState", 2) for s in states],
        "v2 decode": lambda: [from_record(codec.decode(b, "PatientState", 2)) for b in old_bytes],
        "v3 encode": lambda: [encode_state(s) for s in states],
        "v3 decode": lambda: [decode_state(b) for b in new_bytes],
    }
    # CPU time of this process as well as wall time: on a shared machine the wall
    # clock also counts the time other processes held the cores.
    clocks = {"cpu": time.process_time, "wall": time.perf_counter}
    runs: dict[tuple[str, str], list[float]] = {(n, c): [] for n in sides for c in clocks}
    for _ in range(repeats):
        for name, fn in sides.items():
            for clock_name, clock in clocks.items():
                runs[name, clock_name].append(_median_time(fn, 1, clock) / len(states) * 1e6)
    us = {key: statistics.median(times) for key, times in runs.items()}
    total = {
        (v, c): us[f"{v} encode", c] + us[f"{v} decode", c] for v in ("v2", "v3") for c in clocks
    }
    return {
        "states": len(states),
        **{f"{n} µs (cpu / wall)": f"{us[n, 'cpu']:.1f} / {us[n, 'wall']:.1f}" for n in sides},
        **{
            f"{v} encode + decode µs (cpu / wall)": f"{total[v, 'cpu']:.1f} / "
            f"{total[v, 'wall']:.1f}"
            for v in ("v2", "v3")
        },
        "ratio (v2 / v3, cpu)": round(total["v2", "cpu"] / total["v3", "cpu"], 2),
        "v2 bytes per state": round(float(np.mean([len(b) for b in old_bytes])), 1),
        "v3 bytes per state": round(float(np.mean([len(b) for b in new_bytes])), 1),
    }


def _per_event_backfill(events: list[dict], scorer, policy, progress: Progress) -> list:
    """The backfill loop as it was: ``step`` per event (the reference)."""
    from trialwatch.models.exceptions import ModelError
    from trialwatch.models.pipeline import step
    from trialwatch.models.state import Outcome

    states: dict = {}
    out = []
    for i, event in enumerate(events):
        pid = event["patient_id"]
        try:
            result = step(states.get(pid), event, scorer, policy)
        except ModelError:
            out.append(None)
            continue
        if result.outcome is not Outcome.DUPLICATE:
            states[pid] = result.state
        out.append(_digest(result.score, result.alert))
        if i % 1_000 == 0:
            progress.update(i)
    return out


def _batched_backfill(events: list[dict], scorer, policy, progress: Progress) -> list:
    """``trialwatch backfill``'s loop: ``backfill_events`` (``step_batch``)."""
    from trialwatch.producers.backfill import backfill_events

    out = []
    for rec in backfill_events(((i, e, None) for i, e in enumerate(events)), scorer, policy):
        out.append(None if rec.reason else _digest(rec.score, rec.alert))
        if rec.number % 1_000 == 0:
            progress.update(rec.number)
    return out


def _digest(score: dict | None, alert: dict | None) -> tuple:
    """What must agree: the probability (exactly), the tier, the alert and its reasons."""
    if score is None:
        return ()
    reasons = None if alert is None else tuple(r["feature"] for r in alert["reasons"])
    return score["probability"], score["tier"], alert and alert["alert_id"], reasons


def backfill_bench(model_dir: Path, events: list[dict], repeats: int = 3) -> dict:
    """Per-event and batched backfill of the same events, alternating, median of
    ``repeats``; refuses to report a speed-up whose outputs differ."""
    from trialwatch.models.alerts import AlertPolicy
    from trialwatch.models.scorer import Scorer

    scorer, policy = Scorer.load(model_dir), AlertPolicy()
    sides = {"per_event": _per_event_backfill, "batched": _batched_backfill}
    runs: dict[str, list[float]] = {name: [] for name in sides}
    outputs: dict[str, list] = {}
    for r in range(repeats):
        for name, run in sides.items():
            progress = Progress(f"  backfill {name} {r + 1}/{repeats}", len(events))
            start = time.perf_counter()
            outputs[name] = run(events, scorer, policy, progress)
            runs[name].append(len(events) / (time.perf_counter() - start))
        if outputs["per_event"] != outputs["batched"]:
            raise SystemExit("backfill bench: batched outputs differ from per-event ones")
    old, new = (statistics.median(runs[name]) for name in sides)
    return {
        "events": len(events),
        "per_event_step_events_per_s": round(old),
        "step_batch_events_per_s": round(new),
        "ratio (batched / per-event)": round(new / old, 2),
        "per_event runs": " / ".join(f"{x:,.0f}" for x in runs["per_event"]),
        "batched runs": " / ".join(f"{x:,.0f}" for x in runs["batched"]),
    }


def backfill_stages(model_dir: Path, events: list[dict], workdir: Path) -> dict:
    """Where the batched backfill's time goes, µs per input event: each stage timed
    alone on the same events, and the rest (open predictions, alert decisions,
    records, the batch bookkeeping) as the remainder of the end-to-end time."""
    from trialwatch.models.alerts import AlertPolicy
    from trialwatch.models.features import features
    from trialwatch.models.scorer import Scorer
    from trialwatch.models.state import Outcome, apply
    from trialwatch.producers.files import read_events, write_jsonl
    from trialwatch.schemas.contract import TERMINAL

    scorer, n = Scorer.load(model_dir), len(events)
    path = workdir / "stage-events.jsonl"
    write_jsonl(events, path)
    decode = _once(lambda: sum(1 for _ in read_events(path)))
    states: dict = {}
    scored: list = []

    def transitions() -> None:
        for e in events:
            state, outcome = apply(states.get(e["patient_id"]), e)
            states[e["patient_id"]] = state
            if outcome is Outcome.APPLIED and e["event_type"] not in TERMINAL:
                scored.append((state, e["event_time"]))

    apply_s = _once(transitions)
    rows: list = []
    feat_s = _once(lambda: rows.extend(features(st, at) for st, at in scored))
    X = np.vstack(rows)
    lgbm_s = _once(lambda: scorer.probabilities(X))
    many_s = _once(lambda: scorer.score_many(X, [st for st, _ in scored], [at for _, at in scored]))

    def stages() -> Progress:
        return Progress("  backfill stages", n)

    total_s = _once(lambda: _batched_backfill(events, scorer, AlertPolicy(), stages()))
    alerts = sum(1 for d in _batched_backfill(events, scorer, AlertPolicy(), stages())
                 if d and d[2])  # fmt: skip
    explain_s = _once(lambda: [scorer.explain(x) for x in X[:200]]) / 200 * alerts
    parts = {"apply": apply_s, "features": feat_s, "LightGBM": lgbm_s,
             "curve + CLV": many_s - lgbm_s, "TreeSHAP (alerts)": explain_s}  # fmt: skip
    us = {f"{name} µs": round(t / n * 1e6, 1) for name, t in parts.items()}
    return {
        "events": n,
        "alerts per 1,000 events": round(alerts / n * 1000, 1),
        "(file decode, JSON lines) µs": round(decode / n * 1e6, 1),
        **us,
        "the rest µs": round((total_s - sum(parts.values())) / n * 1e6, 1),
        "end to end µs (step_batch, no file)": round(total_s / n * 1e6, 1),
    }


def _once(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


async def publish_bench(settings, events: list[dict]) -> dict:
    from trialwatch.producers.publisher import publish
    from trialwatch.streams import settings as settings_module
    from trialwatch.streams.admin import ensure_topics
    from trialwatch.streams.security import aiokafka_kwargs

    prefix = f"bench-pub-{uuid.uuid4().hex[:6]}."
    s = settings_module.load(
        {
            "TRIALWATCH_TOPIC_PREFIX": prefix,
            "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        }
    )
    await ensure_topics(s)
    records = [(i, e, None) for i, e in enumerate(events[:200_000])]
    report = await publish(records, s.visit_events_topic, aiokafka_kwargs(s))
    return {"events": report.sent, "seconds": round(report.seconds, 2),
            "events_per_s": round(report.events_per_s)}  # fmt: skip


def run_offline(model_dir: Path, events: list[dict], repeats: int = 3) -> dict:
    """The components that need no broker (``python -m bench --components``)."""
    return {
        "codec": codec_bench(events),
        "state codec": state_codec_bench(model_dir, events),
        "simulator_full_profile": simulator_bench(),
        "scorer": scorer_bench(model_dir, events),
        "backfill": backfill_bench(model_dir, events, repeats),
        "backfill_stages": backfill_stages(model_dir, events[:50_000], _workdir()),
    }


def _workdir() -> Path:
    path = Path(".devstack") / "bench" / "components"
    path.mkdir(parents=True, exist_ok=True)
    return path


async def run_micro(settings, model_dir: Path, events: list[dict], repeats: int = 3) -> dict:
    return {
        **run_offline(model_dir, events, repeats),
        "replay_publish": await publish_bench(settings, events),
    }


def micro_markdown(r: dict) -> str:
    lines = ["| component | measure | value |", "|---|---|---|"]
    for component, values in r.items():
        for measure, value in values.items():
            shown = f"{value:,}" if isinstance(value, int | float) else value
            lines.append(f"| {component} | {measure} | {shown} |")
    return "\n".join(lines)
