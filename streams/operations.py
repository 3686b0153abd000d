"""What the commands do, apart from their command-line wiring (``streams.commands``).

Each composes ``producers`` and ``models`` with the app's settings: simulate a
world, publish or replay events, train (simulated worlds or an event file, scored
on the shifted worlds too, mirrored to MLflow when it is configured), make sure a
model exists. The demo and the commands both call these.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from rich.markup import escape

from trialwatch.streams.console import console, print_publish_report, progress_bar
from trialwatch.streams.security import aiokafka_kwargs
from trialwatch.streams.settings import Settings


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


def train_model(
    profile: str,
    horizon: int,
    out_dir: Path,
    seed: int | None = None,
    events: Path | None = None,
) -> Path:
    """Train on the profile's randomized worlds, or on an event file (``events``),
    scored also on the shifted worlds; return the artifact directory."""
    from trialwatch.models.training import train
    from trialwatch.producers.training_sets import (
        file_training_set,
        profile_training_set,
        shifted_evaluations,
    )

    with progress_bar() as progress:
        task = progress.add_task("training", total=1.0, rate="")

        def on_progress(stage: str, fraction: float) -> None:
            progress.update(task, completed=fraction, description=f"training: {stage}")

        if events is not None:
            on_progress(f"hashing {events.name}", 0.01)
            data = file_training_set(events)
        else:
            on_progress("simulating", 0.01)
            data = profile_training_set(profile, seed)
        on_progress("simulating the shifted evaluation worlds", 0.03)
        evaluations = shifted_evaluations("quick" if events is not None else profile)
        path = train(
            data, horizon_days=horizon, out_dir=out_dir, progress=on_progress,
            evaluations=evaluations,
        )  # fmt: skip
    print_training_input(path)
    track_training(path)
    return path


def track_training(version_dir: Path) -> str | None:
    """Mirror a trained artifact to MLflow when ``MLFLOW_TRACKING_URI`` is set
    (``streams.tracking``: best effort, the directory stays the source of truth)."""
    import json

    from trialwatch.streams import tracking

    if not tracking.enabled():
        return None
    card = json.loads((version_dir / "model_card.json").read_text())
    with console.status("logging the run to MLflow..."):
        run_id = tracking.log_training(version_dir, card)
    if run_id is not None:
        console.print(
            f"MLflow run {run_id}: registered as {escape(tracking.registered_model_name())}, "
            f"tagged {tracking.VERSION_TAG}={escape(version_dir.name)}"
        )
    return run_id


def print_training_input(version_dir: Path) -> None:
    """What the training run made of its input: rejected records by number, censoring."""
    import json

    card = json.loads((version_dir / "model_card.json").read_text())
    report = card["data"]["input"]
    rejected = report["rejected"]
    console.print(
        f"read {report['records']:,} records: {report['rows']:,} rows "
        f"({report['censored_rows']:,} censored at the end of the history), "
        f"{report['duplicates']:,} duplicates, {rejected['count']:,} rejected"
    )
    for item in rejected["first"]:
        console.print(f"  record {item['number']}: {item['reason']}")
    if rejected["count"] > len(rejected["first"]):
        by_reason = ", ".join(f"{k} {v:,}" for k, v in rejected["by_reason"].items())
        console.print(f"  ... {rejected['count'] - len(rejected['first']):,} more ({by_reason})")
    console.print(f"peak RSS {card['peak_rss_mb']:,.0f} MB, {card['training_seconds']} s")


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
            f"[bold]no usable model ({escape(str(exc))}): training the quick model (~1 min)..."
        )
    train_model("quick", 60, model_dir)
