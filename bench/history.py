"""A large event history for ``trialwatch train --events``: worlds of a profile,
simulated one at a time (one world in memory), ids prefixed per world, appended
to one JSON-lines file.

    python -m bench.history OUT.jsonl --worlds 3 [--profile full]

Each world is the profile's own (``trialwatch simulate --profile P --seed S``),
with seeds S, S+1, ...; a full world is about 1.23M events, 520 MB of JSON.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from trialwatch.producers.simulator import PROFILES, simulate


def write_history(out: Path, worlds: int, profile: str = "full") -> int:
    """Write ``worlds`` worlds of ``profile`` to ``out``; return the event count."""
    base = PROFILES[profile]
    n = 0
    with open(out, "w") as sink:
        for k in range(worlds):
            world = simulate(replace(base, seed=base.seed + k))
            tag = f"W{k:02d}-"
            for event in world.events:
                for name in ("event_id", "patient_id", "trial_id", "site_id"):
                    event[name] = tag + event[name]
                sink.write(json.dumps(event, separators=(",", ":")) + "\n")
            n += len(world.events)
            print(f"world {k + 1}/{worlds}: {n:,} events written", flush=True)
            del world
    return n


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.history", description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--worlds", type=int, default=1)
    parser.add_argument("--profile", default="full", choices=sorted(PROFILES))
    args = parser.parse_args(argv)
    write_history(args.out, args.worlds, args.profile)


if __name__ == "__main__":
    main()
