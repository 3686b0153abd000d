"""What the commands do, apart from their command-line wiring (``streams.commands``).

Each composes ``producers`` and ``models`` with the app's settings: simulate a
world, publish or replay events, train (simulate + train), make sure a model
exists. The demo and the commands both call these.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from rich.markup import escape

from trialwatch.streams.console import console, print_publish_report, progress_bar
from trialwatch.streams.settings import Settings, aiokafka_kwargs


async def publish_events(
    s: Settings, records: Iterable[tuple], total: int, description: str, pacer
) -> object:
    """Publish ``(number, event, error)`` records to the visit-events topic, with progress."""
    from trialwatch.producers.publisher import publish
    from trialwatch.streams.admin import ensure_topics

    await ensure_topics(s)
    with progress_bar() as progress:
        task = progress.add_task(description, total=total or None, rate="")
        report = await publish(
            records,
            s.visit_events_topic,
            aiokafka_kwargs(s),
            pacer=pacer,
            on_progress=lambda n: progress.update(task, advance=n),
        )
    return report


def simulate_world(profile: str, seed: int | None = None):
    """Simulate a named profile (optionally re-seeded); say how big it came out."""
    from dataclasses import replace

    from trialwatch.producers.simulator import PROFILES, simulate

    if profile not in PROFILES:
        raise SystemExit(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}")
    config = PROFILES[profile] if seed is None else replace(PROFILES[profile], seed=seed)
    with console.status(f"simulating the {profile} world..."):
        world = simulate(config)
    console.print(f"simulated {len(world.events):,} events for {len(world.outcome):,} participants")
    return world


def write_events(events: list[dict], path: Path) -> None:
    """Write events as an Avro container (``.avro``) or JSON lines (anything else)."""
    from trialwatch.producers.files import write_avro, write_jsonl

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".avro":
        write_avro(events, path)
    else:
        write_jsonl(events, path)
    console.print(f"wrote {len(events):,} events to {escape(str(path))}")


async def replay_file(s: Settings, path: Path, *, rate=None, speed=None, start: int = 0):
    """Publish a recorded event file; bad records are reported by number and skipped."""
    from trialwatch.producers.files import count_records, read_events
    from trialwatch.producers.publisher import Pacer

    total = max(count_records(path) - start, 0)
    records = ((r.number, r.event, r.error) for r in read_events(path, start=start))
    report = await publish_events(s, records, total, f"replaying {path.name}", Pacer(rate, speed))
    print_publish_report(report, f"replay {path}")
    return report


def train_model(profile: str, horizon: int, out_dir: Path, seed: int | None = None) -> Path:
    """Simulate the profile's world and train on it; return the artifact directory."""
    from trialwatch.models.training import train
    from trialwatch.producers.training_sets import profile_training_set

    with progress_bar() as progress:
        task = progress.add_task("training", total=1.0, rate="")

        def on_progress(stage: str, fraction: float) -> None:
            progress.update(task, completed=fraction, description=f"training: {stage}")

        on_progress("simulating", 0.02)
        data = profile_training_set(profile, seed)
        return train(data, horizon_days=horizon, out_dir=out_dir, progress=on_progress)


def ensure_model(model_dir: Path) -> None:
    """Train the quick model when there is none, or when the latest one no longer
    loads (trained by an older trialwatch with another artifact layout)."""
    from trialwatch.models.exceptions import ArtifactError
    from trialwatch.models.scorer import Scorer

    try:
        Scorer.load(model_dir)
        return
    except ArtifactError as exc:
        console.print(
            f"[bold]no usable model ({escape(str(exc))}): training the quick model (~30 s)..."
        )
    train_model("quick", 60, model_dir)
