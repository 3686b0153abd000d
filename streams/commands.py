"""trialwatch's own commands, beside Faust's (``trialwatch --help`` lists all).

simulate, replay, stats, train, backfill, alerts, demo, bench. Each is a thin
shell over ``producers/`` and ``models/``; none of them needs a worker running.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from faust.cli import argument, option
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from trialwatch.streams.app import app, settings
from trialwatch.streams.settings import aiokafka_kwargs

console = Console(stderr=True)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal and not sys.stderr.isatty(),
    )


def _report(report, what: str) -> None:
    console.print(
        f"[green]{what}[/]: sent {report.sent:,} events in {report.seconds:.1f}s "
        f"({report.events_per_s:,.0f}/s); rejected {sum(report.rejected.values()):,}"
    )
    for reason, count in sorted(report.rejected.items()):
        console.print(f"  rejected {count:,} x {reason}")
    for position, reason in report.rejected_examples[:10]:
        console.print(f"  e.g. record {position}: {reason}")


async def _publish_events(records, total: int, description: str, pacer) -> object:
    from trialwatch.producers.publisher import publish
    from trialwatch.streams.admin import ensure_topics

    await ensure_topics(settings)
    with _progress() as progress:
        task = progress.add_task(description, total=total or None, rate="")
        report = await publish(
            records,
            settings.visit_events_topic,
            aiokafka_kwargs(settings),
            pacer=pacer,
            on_progress=lambda n: progress.update(task, advance=n),
        )
    return report


@app.command(
    option("--profile", default="demo", help="simulator profile: demo, quick or full"),
    option("--seed", type=int, default=None, help="override the profile's seed"),
    option("--speed", type=float, default=None, help="trial seconds per wall second"),
    option("--rate", type=float, default=None, help="cap in events per second"),
    option("--write", "write_path", default=None, help="also write the events (.jsonl/.avro)"),
    option("--no-publish", is_flag=True, default=False, help="only write / print stats"),
)
async def simulate(self, profile, seed, speed, rate, write_path, no_publish):
    """Simulate a trial world and publish its events to the visit-events topic."""
    from trialwatch.producers.publisher import Pacer

    world = _simulate(profile, seed)
    if write_path:
        _write_events(world.events, Path(write_path))
    if no_publish:
        return
    records = ((i + 1, e, None) for i, e in enumerate(world.events))
    report = await _publish_events(
        records, len(world.events), f"publishing {profile}", Pacer(rate=rate, speed=speed)
    )
    _report(report, "simulate")


def _simulate(profile: str, seed: int | None):
    from dataclasses import replace

    from trialwatch.producers.simulator import PROFILES, simulate

    if profile not in PROFILES:
        raise SystemExit(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}")
    config = PROFILES[profile] if seed is None else replace(PROFILES[profile], seed=seed)
    with console.status(f"simulating the {profile} world..."):
        world = simulate(config)
    console.print(f"simulated {len(world.events):,} events for {len(world.outcome):,} participants")
    return world


def _write_events(events, path: Path) -> None:
    from trialwatch.producers.files import write_avro, write_jsonl

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".avro":
        write_avro(events, path)
    else:
        write_jsonl(events, path)
    console.print(f"wrote {len(events):,} events to {path}")


@app.command(
    option("--profile", default="quick", help="simulator profile"),
    option("--seed", type=int, default=None),
    option("--horizon", type=int, default=60, help="label horizon in days"),
)
async def stats(self, profile, seed, horizon):
    """Print the simulator's statistics next to the published target ranges."""
    from trialwatch.producers.stats import render_stats, world_stats

    world = _simulate(profile, seed)
    Console().print(render_stats(world_stats(world, horizon_days=horizon)))


@app.command(
    argument("path"),
    option("--rate", type=float, default=None, help="cap in events per second"),
    option("--speed", type=float, default=None, help="trial seconds per wall second"),
    option("--start", type=int, default=0, help="resume: skip the first N records"),
)
async def replay(self, path, rate, speed, start):
    """Publish a recorded event file (JSON lines or Avro container): replay FILE."""
    if not Path(path).is_file():
        raise SystemExit(f"trialwatch replay: no such file: {path}")
    await replay_file(Path(path), rate=rate, speed=speed, start=start)


async def replay_file(path: Path, *, rate=None, speed=None, start: int = 0):
    from trialwatch.producers.files import count_records, read_events
    from trialwatch.producers.publisher import Pacer

    total = max(count_records(path) - start, 0)
    records = ((r.number, r.event, r.error) for r in read_events(path, start=start))
    report = await _publish_events(records, total, f"replaying {path.name}", Pacer(rate, speed))
    _report(report, f"replay {path}")
    return report


@app.command(
    option("--profile", default="quick", help="quick (demo/tests) or full"),
    option("--horizon", type=int, default=60, help="label: withdraws within H days"),
    option("--out", "out_dir", default=None, help="artifact root (default TRIALWATCH_MODEL_DIR)"),
    option("--seed", type=int, default=None),
)
async def train(self, profile, horizon, out_dir, seed):
    """Simulate, build features, train LightGBM + baselines + calibration + CLV."""
    path = train_model(profile, horizon, Path(out_dir or settings.model_dir), seed)
    console.print(f"[green]model written to {path}")


def ensure_model(model_dir: Path) -> None:
    """Train the quick model when there is none, or when the latest one no longer
    loads (trained by an older trialwatch with another artifact layout)."""
    from trialwatch.models.exceptions import ArtifactError
    from trialwatch.models.scorer import Scorer

    try:
        Scorer.load(model_dir)
        return
    except ArtifactError as exc:
        console.print(f"[bold]no usable model ({exc}): training the quick model (~30 s)...")
    train_model("quick", 60, model_dir)


def train_model(profile: str, horizon: int, out_dir: Path, seed: int | None = None) -> Path:
    from trialwatch.models.training import train as train_fn

    with _progress() as progress:
        task = progress.add_task("training", total=1.0, rate="")

        def on_progress(stage: str, fraction: float) -> None:
            progress.update(task, completed=fraction, description=f"training: {stage}")

        return train_fn(
            profile=profile, horizon_days=horizon, out_dir=out_dir, seed=seed, progress=on_progress
        )


@app.command(
    argument("path"),
    option("--out", "out_dir", default="out/backfill", help="output directory"),
    option(
        "--model", "model_dir", default=None, help="artifact dir (default TRIALWATCH_MODEL_DIR)"
    ),
)
async def backfill(self, path, out_dir, model_dir):
    """Score an event file offline (no Kafka): backfill FILE --out DIR."""
    from trialwatch.producers.backfill import backfill_file

    if not Path(path).is_file():
        raise SystemExit(f"trialwatch backfill: no such file: {path}")
    with console.status("backfilling..."):
        report = backfill_file(
            Path(path), Path(out_dir), Path(model_dir or settings.model_dir), settings
        )
    console.print_json(json.dumps(report))


@app.command(
    option("--json", "as_json", is_flag=True, default=False, help="one JSON object per line"),
    option("--from-beginning", is_flag=True, default=False),
    option("--limit", type=int, default=0, help="stop after N alerts (0 = follow)"),
    option("--seconds", type=float, default=0.0, help="stop after S seconds (0 = follow)"),
)
async def alerts(self, as_json, from_beginning, limit, seconds):
    """Tail the risk-alerts topic as a live table (or JSON lines)."""
    from trialwatch.streams.tail import tail_alerts

    await tail_alerts(
        settings, as_json=as_json, from_beginning=from_beginning, limit=limit, seconds=seconds
    )


@app.command(
    option("--duration", type=float, default=90.0, help="seconds to run (Ctrl-C stops sooner)"),
    option("--profile", default="demo", help="simulator profile for the demo world"),
    option("--speed", type=float, default=86_400.0 * 5, help="trial seconds per wall second"),
)
async def demo(self, duration, profile, speed):
    """Train if needed, start a worker, simulate a trial world, show alerts live."""
    from trialwatch.streams.demo import run_demo

    await run_demo(settings, duration=duration, profile=profile, speed=speed)


@app.command(
    option("--events", type=int, default=200_000),
    option("--patients", type=int, default=20_000),
    option("--repeats", type=int, default=3),
    option("--quick", is_flag=True, default=False, help="small run for a smoke check"),
    option(
        "--restore",
        default="",
        help="instead: state size, RSS and restore time for these patient counts, "
        "e.g. 100000,1000000",
    ),
)
async def bench(self, events, patients, repeats, quick, restore):
    """Benchmarks: bare aiokafka, bare Faust, full pipeline; latency at fixed rates."""
    if restore:
        from trialwatch.streams.bench_restore import run_restore_bench

        sizes = [int(n.replace("_", "")) for n in restore.split(",") if n.strip()]
        await run_restore_bench(settings, sizes)
        return
    from trialwatch.streams.bench import run_bench

    await run_bench(settings, events=events, patients=patients, repeats=repeats, quick=quick)
