"""``make bench BENCH_ARGS="--restore N,..."``: state size, worker memory, changelog restore time.

For each N: write N realistic PatientState records (the final states of a
simulated world, re-keyed to N distinct patients) straight into a fresh app's
table changelog, partitioned as the worker would, then start a fresh worker
with an empty data directory and time it from process start until Faust reports
table recovery complete (``/progress`` -> ``tables_recovered``); then restart it
on its own RocksDB directory (a worker restart, not a new machine) and time that. An empty
changelog gives the fixed start-up cost to subtract. Worker RSS and the CPU
seconds it used until recovered are read from /proc (CPU time, unlike wall time,
does not grow while a busy machine makes the worker wait); the RocksDB directory
size from disk. Writing and restoring print a progress line every few seconds.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import replace
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.progress import Progress
from bench.stream import RESULTS
from trialwatch.models.state import PatientState, apply, encode_state
from trialwatch.streams import settings as settings_module
from trialwatch.streams.admin import ensure_topics
from trialwatch.streams.security import aiokafka_kwargs
from trialwatch.streams.settings import Settings
from trialwatch.streams.workerproc import WorkerProcess, cpu_seconds, free_port, rss_mb

PARTITIONS = 8


def template_records(n_patients: int = 2_000) -> list[PatientState]:
    """Final per-patient states of a simulated world: realistic ring fill and sizes."""
    from trialwatch.producers.simulator import PROFILES, simulate

    world = simulate(replace(PROFILES["quick"], n_participants=n_patients, seed=11))
    states = {}
    for event in world.events:
        states[event["patient_id"]] = apply(states.get(event["patient_id"]), event)[0]
    return list(states.values())


async def write_changelog(kafka: dict, topic: str, templates: list[PatientState], n: int) -> int:
    """N state records keyed like the worker keys them; returns the bytes written."""
    admin = AIOKafkaAdminClient(**kafka)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(topic, PARTITIONS, 1, topic_configs={"cleanup.policy": "compact"})]
        )
    finally:
        await admin.close()
    producer = AIOKafkaProducer(**kafka, linger_ms=50, max_batch_size=512 * 1024, acks=1)
    await producer.start()
    total = 0
    progress = Progress("writing the changelog", n, unit="states")
    try:
        for i in range(n):
            state = replace(templates[i % len(templates)], patient_id=f"R{i:08d}")
            value = encode_state(state)
            total += len(value)
            await producer.send(topic, value, key=state.patient_id.encode())
            if i % 1_000 == 0:
                progress.update(i)
        await producer.flush()
        if n:
            progress.finish(n)
    finally:
        await producer.stop()
    return total


def _dir_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


class RestoreProgress:
    """``/progress``'s ``changelog_remaining`` as states restored out of ``n``."""

    def __init__(self, label: str, n: int) -> None:
        self.n, self.lines, self.started = n, Progress(label, n, unit="states"), False

    def __call__(self, body: dict) -> bool:
        remaining = int(body.get("changelog_remaining") or 0)
        self.started = self.started or remaining > 0
        recovered = bool(body.get("tables_recovered"))
        if self.n:
            done = self.n if recovered else (self.n - remaining if self.started else 0)
            self.lines.update(max(done, 0))
        return recovered


def restore_once(
    env_base: dict, app_id: str, workdir: Path, timeout_s: float, data_dir: Path,
    n: int = 0, label: str = "restore",
) -> dict:  # fmt: skip
    port = free_port()
    env = {
        **env_base,
        "TRIALWATCH_APP_ID": app_id,
        "TRIALWATCH_DATA_DIR": str(data_dir),
        "TRIALWATCH_WEB_PORT": str(port),
        "TRIALWATCH_STANDBY_REPLICAS": "0",
    }
    started = time.monotonic()
    with WorkerProcess(env, workdir / f"restore-{app_id}.log", port=port) as worker:
        worker.wait_for(
            RestoreProgress(label, n),
            path="/progress",  # not /health: its broker metadata fetch slows the restore
            timeout=timeout_s,
            what="done restoring its tables",
            interval=0.2,
        )
        seconds = time.monotonic() - started
        cpu_s = cpu_seconds(worker.pid)
        time.sleep(2.0)  # let RocksDB settle before reading memory
        return {
            "seconds": round(seconds, 1),
            "cpu_seconds": round(cpu_s, 1),
            "rss_mb": round(rss_mb(worker.pid), 1),
            "rocksdb_mb": round(_dir_mb(data_dir), 1),
        }


async def run_restore_bench(s: Settings, sizes: list[int]) -> dict:
    workdir = Path(".devstack") / "bench" / time.strftime("%Y%m%d-%H%M%S")
    templates = template_records()
    results = []
    for n in [0, *sizes]:
        run = uuid.uuid4().hex[:6]
        prefix = f"bench-restore-{run}."
        env_base = {
            **os.environ,
            "TRIALWATCH_TOPIC_PREFIX": prefix,
            "TRIALWATCH_PARTITIONS": str(PARTITIONS),
        }
        bench_settings = settings_module.load(env_base)
        await ensure_topics(bench_settings)
        app_id = f"bench-restore-{run}"
        changelog = f"{app_id}-patient_to_state-changelog"
        written = await write_changelog(aiokafka_kwargs(s), changelog, templates, n)
        data_dir = workdir / f"restore-{app_id}"
        timeout = 300 + n / 300  # generous: a busy shared machine restores slowly
        result = restore_once(env_base, app_id, workdir, timeout, data_dir, n,
                              f"cold restore of {n:,}")  # fmt: skip
        # The same worker restarted on its own RocksDB: only the changelog tail replays.
        warm = restore_once(env_base, app_id, workdir, timeout, data_dir, 0)
        result.update(
            patients=n,
            state_bytes_per_patient=round(written / n) if n else 0,
            warm_restart_seconds=warm["seconds"],
        )
        results.append(result)
        print(json.dumps(result), flush=True)
    baseline, baseline_cpu = results[0]["seconds"], results[0]["cpu_seconds"]
    for r in results:
        r["restore_seconds"] = round(r["seconds"] - baseline, 1)
        r["restore_cpu_seconds"] = round(r["cpu_seconds"] - baseline_cpu, 1)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "restore.json").write_text(json.dumps(results, indent=2))
    print(restore_markdown(results))
    return {"restore": results}


def restore_markdown(results: list[dict]) -> str:
    """The results as a Markdown table that fits in 80 columns, with its legend."""
    lines = [
        "| patients | bytes | cold s | restore s | CPU s | warm s | RSS MB | DB MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['patients']:,} | {r['state_bytes_per_patient']} | {r['seconds']} "
            f"| {r['restore_seconds']} | {r['restore_cpu_seconds']} "
            f"| {r['warm_restart_seconds']} | {r['rss_mb']} | {r['rocksdb_mb']} |"
        )
    lines += [
        "",
        "bytes: a state's changelog value; cold s: worker start -> tables recovered,",
        "empty data directory; restore s: that minus the empty changelog's; CPU s:",
        "the worker's CPU seconds likewise; warm s: restarted on its own RocksDB;",
        "RSS MB: worker memory after recovery; DB MB: RocksDB on disk.",
    ]
    return "\n".join(lines)


def apply_batch_bench(sizes: list[int], n: int = 100_000, repeats: int = 3) -> list[dict]:
    """CPU microseconds per record of Faust's RocksDB ``apply_changelog_batch``
    (the restore's write path) for each recovery buffer size, on N raw changelog
    events decoded through ``streams.rawchangelog``'s channel; median of repeats,
    each into a fresh RocksDB directory."""
    import asyncio
    import statistics
    import tempfile

    import faust
    from faust.types.tuples import Message

    from trialwatch.streams.app import TableManager
    from trialwatch.streams.codecs import PatientStateValue
    from trialwatch.streams.rawchangelog import recovery_channel

    values = [encode_state(s) for s in template_records(300)]

    async def events_for(table) -> list:
        channel = recovery_channel(table, asyncio.Queue())
        topic = table.changelog_topic_name
        return [
            await channel.decode(
                Message(
                    topic=topic,
                    partition=i % PARTITIONS,
                    offset=i // PARTITIONS,
                    timestamp=0.0,
                    timestamp_type=0,
                    headers=[],
                    key=f"R{i:08d}".encode(),
                    value=values[i % len(values)],
                    checksum=None,
                ),
                propagate=True,
            )
            for i in range(n)
        ]

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            runs = []
            for r in range(repeats):
                app = faust.App(f"apply-{size}-{r}", datadir=f"{tmp}/{size}-{r}",
                                store="rocksdb://", TableManager=TableManager)  # fmt: skip
                table = app.Table("states", default=None, partitions=PARTITIONS,
                                  key_type=bytes, value_type=PatientStateValue)  # fmt: skip
                events = asyncio.run(events_for(table))
                store = table.data
                start = time.process_time()
                for i in range(0, n, size):
                    batch = events[i : i + size]
                    store.apply_changelog_batch(
                        batch, to_key=table._to_key, to_value=table._to_value
                    )
                runs.append((time.process_time() - start) / n * 1e6)
                for db in store._dbs.values():
                    db.close()
            line = {"buffer": size, "records": n, "apply_cpu_us": round(statistics.median(runs), 2)}
            print(json.dumps(line), flush=True)
            results.append(line)
    return results
