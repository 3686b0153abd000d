"""Component benchmarks run by ``make bench`` before the stream benchmark.

Medians of repeated runs, measured side by side in one process: Avro codec
(fastavro vs the reference ``avro`` package), the simulator, state + features,
the scorer (single row, batch, explanation), and replay publishing to Kafka.
"""

from __future__ import annotations

import io
import statistics
import time
import uuid
from pathlib import Path

import numpy as np

from trialwatch.schemas import codec


def _median_time(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
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
    for _ in range(3):
        start = time.perf_counter()
        world = simulate(PROFILES["full"])
        runs.append(time.perf_counter() - start)
        n = len(world.events)
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


async def run_micro(settings, model_dir: Path, events: list[dict]) -> dict:
    return {
        "codec": codec_bench(events),
        "simulator_full_profile": simulator_bench(),
        "scorer": scorer_bench(model_dir, events),
        "replay_publish": await publish_bench(settings, events),
    }


def micro_markdown(r: dict) -> str:
    lines = ["| component | measure | value |", "|---|---|---|"]
    for component, values in r.items():
        for measure, value in values.items():
            lines.append(f"| {component} | {measure} | {value:,} |")
    return "\n".join(lines)
