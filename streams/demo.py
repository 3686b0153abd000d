"""``make demo``: a whole trialwatch deployment in one terminal, then a summary.

Trains a quick model if there is none, starts one worker in a fresh namespace
(topic prefix, app id, state dir: each demo run starts from nothing), simulates
a trial world at accelerated trial time, shows alerts live and stops cleanly
after ``duration`` seconds or on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections import Counter
from pathlib import Path

from rich.markup import escape
from rich.panel import Panel

from trialwatch.streams import settings as settings_module
from trialwatch.streams.admin import ensure_topics
from trialwatch.streams.console import make_console
from trialwatch.streams.security import aiokafka_kwargs
from trialwatch.streams.settings import Settings
from trialwatch.streams.workerproc import WorkerProcess, WorkerProcessError

console = make_console()


def demo_environment(s: Settings, run_id: str) -> dict[str, str]:
    return {
        **os.environ,
        "TRIALWATCH_TOPIC_PREFIX": f"demo-{run_id}.",
        "TRIALWATCH_APP_ID": f"trialwatch-demo-{run_id}",
        "TRIALWATCH_DATA_DIR": str(Path(".devstack") / "demo" / run_id),
        "TRIALWATCH_MODEL_DIR": str(s.model_dir),
        "TRIALWATCH_STANDBY_REPLICAS": "0",
        "KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers,
        "REDIS_URL": s.redis_url,
    }


async def run_demo(s: Settings, *, duration: float, profile: str, speed: float) -> None:
    from trialwatch.producers.publisher import Pacer, publish
    from trialwatch.streams.operations import ensure_model, simulate_world
    from trialwatch.streams.tail import tail_alerts

    ensure_model(s.model_dir)

    run_id = time.strftime("%Y%m%d-%H%M%S")
    env = demo_environment(s, run_id)
    demo_settings = settings_module.load(env)
    await ensure_topics(demo_settings)
    log_path = Path(".devstack") / "demo" / f"worker-{run_id}.log"
    worker = WorkerProcess(env, log_path, port=demo_settings.web_port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGINT, stop.set)
    try:
        try:
            await asyncio.to_thread(worker.wait_healthy, 90.0)
        except WorkerProcessError as exc:
            raise SystemExit(f"trialwatch demo: {exc}") from None
        console.print(
            f"[green]worker healthy[/] ({worker.url}/health); worker log: {escape(str(log_path))}"
        )
        console.print(
            f"[bold]dashboard:[/] {worker.url}/dashboard (fills live as the world is published)"
        )
        world = simulate_world(profile)
        records = ((i + 1, e, None) for i, e in enumerate(world.events))
        publisher = asyncio.create_task(
            publish(
                records,
                demo_settings.visit_events_topic,
                aiokafka_kwargs(demo_settings),
                pacer=Pacer(speed=speed),
                stop=stop,
            )
        )
        loop.call_later(duration, stop.set)
        alerts = await tail_alerts(demo_settings, from_beginning=True, stop=stop)
        stop.set()
        report = await publisher
    finally:
        worker.stop(timeout=30.0)
    summarize(world, report, alerts)


def summarize(world, report, alerts: list[dict]) -> None:
    participants = len(world.outcome)
    tiers = Counter(a["tier"] for a in alerts)
    per_1000 = 1000 * len({a["patient_id"] for a in alerts}) / max(participants, 1)
    by_tier = ", ".join(f"{tier} {n:,}" for tier, n in tiers.most_common())
    console.print(
        Panel.fit(
            f"events published: {report.sent:,} of {len(world.events):,} "
            f"({report.events_per_s:,.0f}/s)\n"
            f"alerts: {len(alerts):,}" + (f" ({by_tier})" if by_tier else "") + "\n"
            f"participants alerted per 1,000: {per_1000:.0f}",
            title="demo summary",
        )
    )
    if alerts:
        top = max(alerts, key=lambda a: a["value_at_risk"])
        console.print("[bold]the alert with the most value at risk, in full:")
        console.print_json(json.dumps(top))
