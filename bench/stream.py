"""``make bench``: the pipeline against bare Kafka and bare Faust, side by side.

One run, one pre-produced input (>= 200k events, >= 20k patients, 8 partitions):
  (a) bare aiokafka consume -> produce passthrough (in this process)
  (b) bare Faust agent that only consumes
  (c) bare Faust agent that writes one table key per event
  (d) the full trialwatch worker
Each is repeated and the median events/s is reported, with d/b and d/a. Then a
latency run at fixed input rates: produce time -> score readable, and -> alert
readable, p50/p95/p99. Markdown on stdout, JSON in bench-results/stream.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.progress import Progress
from trialwatch.schemas import codec as avro
from trialwatch.streams import settings as settings_module
from trialwatch.streams.admin import ensure_topics
from trialwatch.streams.console import make_console
from trialwatch.streams.security import aiokafka_kwargs
from trialwatch.streams.settings import Settings
from trialwatch.streams.workerproc import WorkerProcess, free_port

# lines whole when stderr is a pipe or a file (rich would wrap them at 80 columns)
console = make_console(stderr=True)
RESULTS = Path("bench-results")


def bench_events(n_events: int, n_patients: int) -> list[dict]:
    """The first ``n_events`` events (event-time order) of a world of ``n_patients``,
    all enrolled within 30 days so that every patient appears in the input."""
    from trialwatch.producers.simulator import PROFILES, simulate

    config = replace(PROFILES["full"], n_participants=n_patients, enrollment_days=30, seed=7)
    events = simulate(config).events
    if len(events) < n_events:
        raise SystemExit(f"world too small: {len(events)} events < {n_events}")
    return events[:n_events]


async def produce(kafka: dict, topic: str, events: list[dict]) -> None:
    producer = AIOKafkaProducer(**kafka, linger_ms=20, acks=1)
    await producer.start()
    progress = Progress("producing the input", len(events))
    try:
        for i, event in enumerate(events):
            await producer.send(topic, avro.encode(event), key=event["patient_id"].encode())
            if i % 1_000 == 0:
                progress.update(i)
        await producer.flush()
        progress.finish(len(events))
    finally:
        await producer.stop()


# --------------------------------------------------------------------- (a)
async def passthrough(kafka: dict, source: str, n: int, label: str = "(a) passthrough") -> float:
    sink = f"{source}.passthrough-{uuid.uuid4().hex[:6]}"
    consumer = AIOKafkaConsumer(
        source,
        **kafka,
        group_id=f"bench-a-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=True,
        max_poll_records=5000,
    )
    producer = AIOKafkaProducer(**kafka, linger_ms=5)
    await consumer.start()
    await producer.start()
    seen = 0
    first = None
    progress = Progress(label, n)
    try:
        while seen < n:
            progress.update(seen)
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for records in batch.values():
                for record in records:
                    if first is None:
                        first = time.perf_counter()
                    await producer.send(sink, record.value, key=record.key)
                    seen += 1
        await producer.flush()
        elapsed = time.perf_counter() - first
    finally:
        await consumer.stop()
        await producer.stop()
    return n / elapsed


# ----------------------------------------------------------------- (b)-(d)
def run_subprocess_bench(
    worker: WorkerProcess, progress_path: str, n: int, label: str = "worker"
) -> float:
    """Start a worker, wait until it processed ``n`` events, return events/s.

    The worker reports ``{"count", "first", "last"}`` (wall-clock seconds of its
    first and last event) at ``progress_path``, so start-up is not counted; a
    progress line on stderr every few seconds says how far it got.
    """

    def progress(body: dict) -> dict:
        return body.get("progress", body)

    lines = Progress(label, n)

    def done(body: dict) -> bool:
        count = progress(body)["count"]
        lines.update(count)
        return count >= n

    with worker:
        body = worker.wait_for(
            done,
            path=progress_path,
            timeout=max(120.0, n / 100),  # a slow machine must not fail the run
            what=f"done with {n:,} events",
        )
    p = progress(body)
    return p["count"] / (p["last"] - p["first"])


def bare_faust(s: Settings, topic: str, mode: str, n: int, workdir: Path, label: str) -> float:
    port = free_port()
    run = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "BENCH_MODE": mode,
        "BENCH_TOPIC": topic,
        "BENCH_APP_ID": f"bench-{mode}-{run}",
        "BENCH_PARTITIONS": str(s.partitions),
        "BENCH_DATA_DIR": str(workdir / f"{mode}-{run}"),
        "BENCH_PORT": str(port),
        "KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers,
    }
    command = (sys.executable, "-m", "bench.apps", "worker")
    worker = WorkerProcess(env, workdir / f"{mode}-{run}.log", port=port, command=command)
    return run_subprocess_bench(worker, "/bench", n, label)


def full_pipeline(env_base: dict, n: int, workdir: Path, label: str) -> float:
    port = free_port()
    run = uuid.uuid4().hex[:8]
    env = {
        **env_base,
        "TRIALWATCH_APP_ID": f"bench-full-{run}",
        "TRIALWATCH_DATA_DIR": str(workdir / f"full-{run}"),
        "TRIALWATCH_WEB_PORT": str(port),
        "TRIALWATCH_STANDBY_REPLICAS": "0",
    }
    worker = WorkerProcess(env, workdir / f"full-{run}.log", port=port)
    return run_subprocess_bench(worker, "/progress", n, label)  # /health asks the broker


# ----------------------------------------------------------------- latency
async def latency_run(s: Settings, env_base: dict, rate: float, seconds: float, events, workdir):
    """Fresh worker; publish at ``rate``; time produce -> score/alert readable."""
    from trialwatch.producers.publisher import Pacer

    prefix = f"bench-lat-{uuid.uuid4().hex[:6]}."
    env = {**env_base, "TRIALWATCH_TOPIC_PREFIX": prefix}
    lat_settings = settings_module.load(env)
    await ensure_topics(lat_settings)
    port = free_port()
    env.update(
        TRIALWATCH_APP_ID=f"bench-lat-{uuid.uuid4().hex[:6]}",
        TRIALWATCH_DATA_DIR=str(workdir / f"lat-{port}"),
        TRIALWATCH_WEB_PORT=str(port),
        TRIALWATCH_STANDBY_REPLICAS="0",
    )
    worker = WorkerProcess(env, workdir / f"lat-{port}.log", port=port).start()
    sent_at: dict[str, float] = {}
    score_lat: list[float] = []
    alert_lat: list[float] = []
    try:
        await asyncio.to_thread(worker.wait_healthy)
        readers = [
            _reader(aiokafka_kwargs(s), lat_settings.risk_scores_topic, "RiskScore"),
            _reader(aiokafka_kwargs(s), lat_settings.risk_alerts_topic, "RiskAlert"),
        ]
        for reader in readers:
            await reader.start()
        await asyncio.sleep(2.0)  # let the worker's partitions settle before timing
        n = int(rate * seconds)
        producer = AIOKafkaProducer(**aiokafka_kwargs(s), linger_ms=0)
        await producer.start()
        stop = asyncio.Event()
        collectors = [
            asyncio.create_task(_collect(readers[0], sent_at, score_lat, stop)),
            asyncio.create_task(_collect(readers[1], sent_at, alert_lat, stop)),
        ]
        pacer = Pacer(rate=rate)
        progress = Progress(f"latency at {rate:,.0f}/s: published", n)
        for i, event in enumerate(events[:n]):
            progress.update(i)
            wait = pacer.delay(event["event_time"])
            if wait > 0:
                await asyncio.sleep(wait)
            value = avro.encode(event)
            sent_at[event["event_id"]] = time.time()
            await producer.send(
                lat_settings.visit_events_topic, value, key=event["patient_id"].encode()
            )
        await producer.flush()
        await producer.stop()
        await asyncio.sleep(3.0)
        stop.set()
        await asyncio.gather(*collectors)
        for reader in readers:
            await reader.stop()
    finally:
        worker.stop(timeout=30.0)
    return {
        "rate": rate,
        "events": n,
        "score": _percentiles(score_lat),
        "alert": _percentiles(alert_lat),
    }


def _reader(kafka: dict, topic: str, schema: str) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        topic,
        **kafka,
        group_id=f"bench-reader-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        fetch_max_wait_ms=5,
    )
    consumer.schema = schema  # type: ignore[attr-defined]
    return consumer


async def _collect(consumer, sent_at: dict, out: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        batch = await consumer.getmany(timeout_ms=50)
        now = time.time()
        for records in batch.values():
            for record in records:
                event_id = avro.decode(record.value, consumer.schema)["event_id"]
                if event_id in sent_at:
                    out.append(now - sent_at[event_id])


def _percentiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def pct(p: float) -> float:
        return round(1000 * ordered[min(int(p * len(ordered)), len(ordered) - 1)], 2)

    return {"n": len(values), "p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99)}


# -------------------------------------------------------------------- main
def run_components(s: Settings, *, events: int, patients: int, repeats: int, quick: bool) -> dict:
    """The broker-free component benchmarks alone; JSON in bench-results/components.json."""
    if quick:
        events, patients = 20_000, 2_000
    from trialwatch.streams.operations import ensure_model

    ensure_model(s.model_dir)
    console.print(f"simulating {patients:,} patients, keeping {events:,} events...")
    input_events = bench_events(events, patients)
    from bench.components import micro_markdown, run_offline

    result = run_offline(s.model_dir, input_events, repeats)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "components.json").write_text(json.dumps(result, indent=2))
    print(micro_markdown(result), flush=True)
    return result


async def run_bench(s: Settings, *, events: int, patients: int, repeats: int, quick: bool) -> dict:
    if quick:
        events, patients, repeats = 20_000, 2_000, 1
    workdir = Path(".devstack") / "bench" / time.strftime("%Y%m%d-%H%M%S")
    prefix = f"bench-{uuid.uuid4().hex[:6]}."
    env_base = {**os.environ, "TRIALWATCH_TOPIC_PREFIX": prefix, "TRIALWATCH_PARTITIONS": "8"}
    bench_settings = settings_module.load(env_base)
    await ensure_topics(bench_settings)
    console.print(f"simulating {patients:,} patients, keeping {events:,} events...")
    input_events = bench_events(events, patients)
    topic = bench_settings.visit_events_topic
    from trialwatch.streams.operations import ensure_model

    ensure_model(s.model_dir)
    from bench.components import micro_markdown, run_micro

    console.print("component benchmarks (codec, simulator, scorer, backfill, publish)...")
    micro = await run_micro(s, s.model_dir, input_events, max(repeats, 3))
    print(micro_markdown(micro) + "\n", flush=True)
    console.print(f"producing {events:,} events to {topic}...")
    await produce(aiokafka_kwargs(s), topic, input_events)

    runs: dict[str, list[float]] = {"a": [], "b": [], "c": [], "d": []}
    for i in range(repeats):
        console.print(f"repetition {i + 1}/{repeats}")
        run = f"run {i + 1}/{repeats}"
        kafka = aiokafka_kwargs(s)
        runs["a"].append(await passthrough(kafka, topic, events, f"(a) passthrough {run}"))
        runs["b"].append(
            bare_faust(bench_settings, topic, "consume", events, workdir, f"(b) consume {run}")
        )
        runs["c"].append(
            bare_faust(bench_settings, topic, "table", events, workdir, f"(c) table {run}")
        )
        runs["d"].append(full_pipeline(env_base, events, workdir, f"(d) full pipeline {run}"))
        console.print({k: round(v[-1]) for k, v in runs.items()})
    med = {k: statistics.median(v) for k, v in runs.items()}
    latency = []
    for rate in (1_000.0, 5_000.0):
        console.print(f"latency at {rate:,.0f} events/s...")
        seconds = 10.0 if not quick else 4.0
        latency.append(await latency_run(s, env_base, rate, seconds, input_events, workdir))
    result = {
        "events": events,
        "patients": len({e["patient_id"] for e in input_events}),
        "partitions": 8,
        "repeats": repeats,
        "events_per_s": {k: round(v) for k, v in med.items()},
        "runs": {k: [round(x) for x in v] for k, v in runs.items()},
        "ratio_d_over_b": round(med["d"] / med["b"], 3),
        "ratio_d_over_a": round(med["d"] / med["a"], 3),
        "latency": latency,
        "components": micro,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "stream.json").write_text(json.dumps(result, indent=2))
    print(markdown(result))
    return result


def _triple(x: dict) -> str:
    return f"{x.get('p50_ms', '-')} / {x.get('p95_ms', '-')} / {x.get('p99_ms', '-')} (n={x['n']})"


def markdown(r: dict) -> str:
    eps = r["events_per_s"]
    lines = [
        f"Stream benchmark: {r['events']:,} events, {r['patients']:,} patients, "
        f"{r['partitions']} partitions, median of {r['repeats']}",
        "",
        "| pipeline | events/s |",
        "|---|---|",
        f"| (a) bare aiokafka passthrough | {eps['a']:,} |",
        f"| (b) bare Faust, consume only | {eps['b']:,} |",
        f"| (c) bare Faust, one table write per event | {eps['c']:,} |",
        f"| (d) trialwatch full pipeline | {eps['d']:,} |",
        "",
        f"d/b = {r['ratio_d_over_b']:.2f}, d/a = {r['ratio_d_over_a']:.2f}",
        "",
        "| input rate | produce -> score p50 / p95 / p99 ms "
        "| produce -> alert p50 / p95 / p99 ms |",
        "|---|---|---|",
    ]
    for lat in r["latency"]:
        lines.append(
            f"| {lat['rate']:,.0f}/s | {_triple(lat['score'])} | {_triple(lat['alert'])} |"
        )
    return "\n".join(lines)
