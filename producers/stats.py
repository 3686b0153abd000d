"""Statistics of a simulated world beside the published targets it aims for."""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict

import numpy as np
from rich.console import Console
from rich.table import Table

from trialwatch.producers.simulator import PROFILES, TARGET_DROPOUT, SimulatedWorld, simulate
from trialwatch.schemas.contract import MS_PER_DAY, TERMINAL


def label_base_rate(world: SimulatedWorld, horizon_days: int) -> float:
    """Share of non-terminal events followed by the participant's withdrawal within H days."""
    withdrawn_at = {
        e["patient_id"]: e["event_time"] for e in world.events if e["event_type"] == "WITHDRAWN"
    }
    horizon = horizon_days * MS_PER_DAY
    positives = total = 0
    for e in world.events:
        if e["event_type"] in TERMINAL:
            continue
        total += 1
        t = withdrawn_at.get(e["patient_id"])
        positives += t is not None and e["event_time"] < t <= e["event_time"] + horizon
    return positives / max(total, 1)


def world_stats(world: SimulatedWorld, horizon_days: int = 60) -> dict:
    phase_of = {e["patient_id"]: e["phase"] for e in world.events if e["event_type"] == "ENROLLED"}
    by_phase: dict[str, list[bool]] = defaultdict(list)
    for patient_id, outcome in world.outcome.items():
        by_phase[phase_of[patient_id]].append(outcome == "WITHDRAWN")
    per_patient = np.array(list(Counter(e["patient_id"] for e in world.events).values()))
    terminal = np.array([e["event_type"] in TERMINAL for e in world.events])
    return {
        "profile_seed": world.seed,
        "participants": len(world.outcome),
        "events": len(world.events),
        "retention": 1 - float(np.mean([o == "WITHDRAWN" for o in world.outcome.values()])),
        "dropout_by_phase": {
            phase: {
                "participants": len(flags),
                "dropout": float(np.mean(flags)),
                "target": list(TARGET_DROPOUT[phase]),
            }
            for phase, flags in sorted(by_phase.items())
        },
        "events_per_participant": {
            "mean": float(per_patient.mean()),
            "median": float(np.median(per_patient)),
            "p90": float(np.percentile(per_patient, 90)),
        },
        "events_by_type": dict(Counter(e["event_type"] for e in world.events).most_common()),
        "horizon_days": horizon_days,
        "label_base_rate": label_base_rate(world, horizon_days),
        "mean_true_probability": float(world.true_probability(horizon_days)[~terminal].mean()),
    }


def render_stats(stats: dict) -> Table:
    table = Table(
        title=f"simulated world: {stats['participants']:,} participants, "
        f"{stats['events']:,} events, retention {stats['retention']:.1%}"
    )
    table.add_column("measure")
    table.add_column("simulated", justify="right")
    table.add_column("target / note")
    for phase, row in stats["dropout_by_phase"].items():
        low, high = row["target"]
        ok = "ok" if low <= row["dropout"] <= high else "OUTSIDE"
        table.add_row(
            f"dropout, phase {phase} (n={row['participants']:,})",
            f"{row['dropout']:.1%}",
            f"{low:.0%}-{high:.0%} {ok}",
        )
    epp = stats["events_per_participant"]
    table.add_row(
        "events per participant",
        f"{epp['mean']:.1f}",
        f"median {epp['median']:.0f}, p90 {epp['p90']:.0f}",
    )
    table.add_row(
        f"label base rate ({stats['horizon_days']}-day withdrawal)",
        f"{stats['label_base_rate']:.2%}",
        "share of scored events",
    )
    table.add_row("mean true probability", f"{stats['mean_true_probability']:.2%}", "oracle")
    for kind, count in stats["events_by_type"].items():
        table.add_row(f"  {kind}", f"{count:,}", "")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="quick", choices=sorted(PROFILES))
    parser.add_argument("--horizon", type=int, default=60)
    args = parser.parse_args()
    world = simulate(PROFILES[args.profile])
    Console().print(render_stats(world_stats(world, args.horizon)))


if __name__ == "__main__":
    main()
