"""The quick profile's transfer table under other LightGBM settings or families:

    python -m bench.transfer [--set num_leaves=7 --set min_data_in_leaf=2000]
                             [--family 12x500x8]

Trains as ``train --profile quick`` does (randomized family, then the card's
shifted worlds), with ``--set`` overriding the quick family's LightGBM parameters
(``producers.training_sets.FAMILY_PARAMS`` over ``models.training.CHURN_PARAMS``)
and ``--family`` the quick family (worlds x participants x trials), and prints the
card's transfer table (value and ratio to the world's oracle) in 80 columns, and
the CLV decile calibration.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from trialwatch.models import training
from trialwatch.producers import training_sets


def _value(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def table(transfer: dict) -> str:
    lines = [f"{'world':<26} {'ROC-AUC (x oracle)':>18} {'PR-AUC (x oracle)':>18} {'CITL':>6}"]
    for name, row in transfer.items():
        lines.append(
            f"{name.split(' (')[0][:26]:<26} {row['roc_auc']:>9.3f} ({row['roc_auc_ratio']:.3f})"
            f" {row['pr_auc']:>9.3f} ({row['pr_auc_ratio']:.3f})"
            f" {row['calibration_in_the_large']:>6.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.transfer", description=__doc__)
    parser.add_argument("--set", action="append", default=[], metavar="PARAM=VALUE")
    parser.add_argument("--family", default=None, metavar="WORLDSxPARTICIPANTSxTRIALS")
    args = parser.parse_args(argv)
    overrides = dict(training_sets.FAMILY_PARAMS.get("quick", {}))
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = _value(value)
    training_sets.FAMILY_PARAMS["quick"] = overrides
    if args.family:
        training_sets.FAMILIES["quick"] = tuple(int(v) for v in args.family.split("x"))
    started = time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        path = training.train(
            training_sets.profile_training_set("quick"),
            out_dir=Path(tmp),
            evaluations=training_sets.shifted_evaluations("quick"),
        )
        card = json.loads((path / "model_card.json").read_text())
    family = training_sets.FAMILIES["quick"]
    print(f"settings: {' '.join(args.set) or 'shipped'}; family {family}; "
          f"{card['model']['trees']} trees; {time.process_time() - started:.0f} s CPU, "
          f"training {card['training_seconds']} s")  # fmt: skip
    params = card["model"]["params"]
    changed = {k: v for k, v in params.items() if training.CHURN_PARAMS.get(k) != v}
    print(f"params over CHURN_PARAMS: {changed or 'none'}")
    print(table(card["transfer"]))
    print("CLV predicted / realised by decile:",
          " ".join(f"{row['ratio']:.3f}" for row in card["clv_decile_calibration"]))  # fmt: skip


if __name__ == "__main__":
    main()
