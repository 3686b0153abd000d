"""Can a participant-level model be calibrated in the large on a world whose
baseline hazard it has not seen?  One reproducible experiment:

    python -m bench.calibration [--participants 2000] [--own 6000]

1. The shipped quick model (its randomized family, as ``train --profile quick``)
   scored on nominal worlds whose only change is the baseline-hazard multiplier
   m, and on the two hazard-shifted card worlds with and without their hazard
   shift: calibration-in-the-large (mean predicted / realized) beside the
   oracle's, which knows the hazard.
2. A model trained on each hazard-shifted card world itself (its own earlier
   participants; the test split is its later ones).

Prints an 80-column table; the model artifacts go to a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import replace
from pathlib import Path

from trialwatch.models.training import train
from trialwatch.producers.simulator import PROFILES, simulate
from trialwatch.producers.training_sets import (
    SHIFTED_WORLDS,
    Worlds,
    profile_training_set,
    world_training_set,
)

MULTIPLIERS = (0.4, 0.6, 0.8, 1.0, 1.25, 1.4, 2.0)
HIGH, REMOTE = list(SHIFTED_WORLDS)[1:3]


def _card(path: Path) -> dict:
    return json.loads((path / "model_card.json").read_text())


def _line(name: str, row: dict) -> str:
    oracle = row.get("oracle_calibration_in_the_large")
    o = f"{oracle:6.2f}" if oracle is not None else "     -"
    return (
        f"{name:<44} {row['base_rate']:6.3f} {row['calibration_in_the_large']:6.2f} {o}"
        f" {row['roc_auc_ratio']:6.3f}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.calibration", description=__doc__)
    parser.add_argument("--participants", type=int, default=2_000, help="per scored world")
    parser.add_argument("--own", type=int, default=6_000, help="per self-trained world")
    args = parser.parse_args(argv)
    base = replace(PROFILES["quick"], n_participants=args.participants)
    configs = {f"nominal, hazard x{m:g}": replace(base, seed=7_100 + k, hazard_scale=m)
               for k, m in enumerate(MULTIPLIERS)}  # fmt: skip
    for k, name in enumerate((HIGH, REMOTE)):
        shift = SHIFTED_WORLDS[name]
        short = name.split(" (")[0]
        h = shift["hazard_scale"]
        configs[f"{short}, its hazard x{h:g}"] = replace(base, seed=7_200 + k, **shift)
        configs[f"{short}, hazard x1"] = replace(
            base, seed=7_300 + k, **{**shift, "hazard_scale": 1.0}
        )
    header = (
        f"{'world':<44} {'rate':>6} {'CITL':>6} {'oracle':>6} {'ROC/o':>6}\n"
        f"{'':<44} {'':>6} {'model':>6} {'CITL':>6} {'':>6}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        worlds = Worlds(configs, "quick")
        shipped = train(profile_training_set("quick"), out_dir=Path(tmp) / "q", evaluations=worlds)
        transfer = _card(shipped)["transfer"]
        print("1. the shipped quick model (trained on hazard x0.5-2, log-uniform)")
        print(header)
        print(_line("its own test split", transfer["test split"]))
        for name in configs:
            print(_line(name, transfer[name]))
        print("\n2. a model trained on the shifted world itself (test split: its later")
        print(f"   participants; {args.own:,} participants per world)")
        print(header)
        for k, name in enumerate((HIGH, REMOTE)):
            own = replace(PROFILES["quick"], seed=7_400 + k, n_participants=args.own,
                          **SHIFTED_WORLDS[name])  # fmt: skip
            path = train(world_training_set(simulate(own), "quick"), out_dir=Path(tmp) / f"o{k}")
            print(_line(name.split(" (")[0], _card(path)["transfer"]["test split"]))


if __name__ == "__main__":
    main()
