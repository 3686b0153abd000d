"""trialwatch's own commands, beside Faust's (``trialwatch --help`` lists all).

simulate, replay, stats, train, backfill, evaluate, recalibrate, promote,
rollback, shadow, alerts, demo. Each is a thin shell over ``producers/`` and
``models/`` (``streams.operations``, ``streams.lifecycle``); none of them needs
a worker running.
"""

from __future__ import annotations

import json
from pathlib import Path

from faust.cli import argument, option
from rich.markup import escape

from trialwatch.streams import operations
from trialwatch.streams.app import app, settings
from trialwatch.streams.console import console, make_console, print_publish_report


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

    world = operations.simulate_world(profile, seed)
    if write_path:
        operations.write_events(world.events, Path(write_path))
    if no_publish:
        return
    records = ((i + 1, e, None) for i, e in enumerate(world.events))
    pacer = Pacer(rate=rate, speed=speed)
    report = await operations.publish_events(
        settings, records, len(world.events), f"publishing {profile}", pacer
    )
    print_publish_report(report, "simulate")


@app.command(
    option("--profile", default="quick", help="simulator profile"),
    option("--seed", type=int, default=None),
    option("--horizon", type=int, default=60, help="label horizon in days"),
)
async def stats(self, profile, seed, horizon):
    """Print the simulator's statistics next to the published target ranges."""
    from trialwatch.producers.stats import render_stats, world_stats

    world = operations.simulate_world(profile, seed)
    make_console().print(render_stats(world_stats(world, horizon_days=horizon)))


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
    await operations.replay_file(settings, Path(path), rate=rate, speed=speed, start=start)


@app.command(
    option("--profile", default=None, help="quick (demo/tests, the default) or full"),
    option("--events", "events_path", default=None,
           help="train on this event file instead (.jsonl or .avro, a sponsor's history)"),
    option("--horizon", type=int, default=60, help="label: withdraws within H days"),
    option("--out", "out_dir", default=None, help="artifact root (default TRIALWATCH_MODEL_DIR)"),
    option("--seed", type=int, default=None),
)  # fmt: skip
async def train(self, profile, events_path, horizon, out_dir, seed):
    """Train LightGBM + baselines + calibration + CLV on simulated worlds or --events FILE."""
    events = None
    if events_path is not None:
        if profile is not None or seed is not None:
            raise SystemExit("trialwatch train: --events and --profile/--seed exclude each other")
        events = Path(events_path)
        if not events.is_file():
            raise SystemExit(f"trialwatch train: no such file: {events_path}")
        if events.suffix not in (".avro", ".jsonl", ".json", ".ndjson"):
            raise SystemExit(f"trialwatch train: {events_path}: use a .jsonl or .avro file")
    if horizon <= 0:
        raise SystemExit("trialwatch train: --horizon must be a positive number of days")
    try:
        path = operations.train_model(
            profile or "quick", horizon, Path(out_dir or settings.model_dir), seed, events=events
        )
    except ValueError as exc:  # unknown profile, too little labelled history in the file
        raise SystemExit(f"trialwatch train: {exc}") from None
    console.print(f"[green]model written to {escape(str(path))}")


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
            Path(path), Path(out_dir), Path(model_dir or settings.model_dir), settings.alert_policy
        )
    console.print_json(json.dumps(report))


@app.command(
    argument("path"),
    option(
        "--model", "model_dir", default=None, help="artifact dir (default TRIALWATCH_MODEL_DIR)"
    ),
    option("--weeks", type=int, default=26, help="sliding window of prediction weeks"),
    option("--json", "as_json", is_flag=True, default=False, help="the report as JSON on stdout"),
)
async def evaluate(self, path, model_dir, weeks, as_json):
    """Grade the model on an event file: realized accuracy and drift, as the stream does."""
    from trialwatch.producers.evaluation import evaluate_file
    from trialwatch.streams.evaluation_view import drift_lines, realized_table

    if not Path(path).is_file():
        raise SystemExit(f"trialwatch evaluate: no such file: {path}")
    with console.status("evaluating..."):
        report = evaluate_file(
            Path(path), Path(model_dir or settings.model_dir), settings.alert_policy, weeks
        )
    if as_json:
        print(json.dumps(report))
        return
    out = make_console()
    out.print(f"model {report['model_version']}: test ROC-AUC {report['model_test_roc_auc']}")
    out.print(realized_table(report))
    for line in drift_lines(report):
        out.print(escape(line))


@app.command(
    argument("path"),
    option("--trial", "trial_id", required=True, help="the trial to recalibrate"),
    option(
        "--model", "model_dir", default=None, help="artifact dir (default TRIALWATCH_MODEL_DIR)"
    ),
    option("--publish", is_flag=True, default=False, help="also send it to every worker"),
)
async def recalibrate(self, path, trial_id, model_dir, publish):
    """Fit a trial's calibration from an event file: recalibrate FILE --trial T."""
    from trialwatch.streams import control, lifecycle

    if not Path(path).is_file():
        raise SystemExit(f"trialwatch recalibrate: no such file: {path}")
    cal = lifecycle.recalibrate(
        settings, Path(path), trial_id, Path(model_dir or settings.model_dir)
    )
    if cal is not None and publish:
        await control.publish(settings, control.calibration_record(cal, "recalibrate"))
        console.print(f"published {escape(cal.version)} to {escape(settings.model_control_topic)}")


@app.command(argument("version"))
async def promote(self, version):
    """Make VERSION the champion on every worker, without a restart."""
    from trialwatch.streams import lifecycle

    await lifecycle.promote(settings, version)


@app.command()
async def rollback(self):
    """Serve the champion before the current one again (every worker)."""
    from trialwatch.streams import lifecycle

    await lifecycle.rollback(settings)


@app.command(
    argument("version", required=False),
    option("--off", is_flag=True, default=False, help="stop shadow scoring"),
)
async def shadow(self, version, off):
    """Score every event with VERSION too (to risk-scores.shadow; never alerts)."""
    from trialwatch.streams import lifecycle

    if off == (version is not None):
        raise SystemExit("trialwatch shadow: give a VERSION, or --off")
    await lifecycle.shadow(settings, None if off else version)


@app.command(
    option("--json", "as_json", is_flag=True, default=False, help="one JSON object per line"),
    option("--from-beginning", is_flag=True, default=False),
    option("--limit", type=int, default=0, help="stop after N alerts (0 = follow)"),
    option("--seconds", type=float, default=0.0, help="stop after S seconds (0 = follow)"),
)
async def alerts(self, as_json, from_beginning, limit, seconds):
    """Tail the risk-alerts topic: a live table, plain lines when piped, or JSON lines."""
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
