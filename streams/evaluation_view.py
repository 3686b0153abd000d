"""How ``trialwatch evaluate`` shows its report to a person (tables that fit 80 columns)."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def realized_table(report: dict[str, Any]) -> Table:
    """One row per (model version, trial): matured predictions and what they scored."""
    table = Table(title="realized accuracy (matured predictions)", title_justify="left")
    for name in ("trial", "n", "pos", "ROC", "PR", "Brier", "mean p/rate", "slope"):
        table.add_column(name, justify="left" if name == "trial" else "right", no_wrap=True)
    for row in [*report["realized"], *report["realized_all_trials"]]:
        table.add_row(
            "all trials" if row["trial_id"] == "*" else row["trial_id"],
            f"{row['n']:,}",
            f"{row['positives']:,}",
            _num(row["roc_auc"]),
            _num(row["pr_auc"]),
            _num(row["brier"], 4),
            _num(row["calibration_in_the_large"], 2),
            _num(row["calibration_slope"], 2),
        )
    return table


def drift_lines(report: dict[str, Any]) -> list[str]:
    """One line per trial: the score's PSI and the features flagged moderate or major."""
    lines = []
    for trial, drift in report["drift"].items():
        if not drift["psi"]:
            lines.append(f"{trial}: {drift['rows']:,} rows in the window, too few for PSI")
            continue
        flagged = ", ".join(f"{name} {drift['psi'][name]:.2f}" for name in drift["flags"])
        score_psi = drift["psi"].get("score")
        lines.append(
            f"{trial}: score PSI {_num(score_psi, 2)} over {drift['rows']:,} rows; "
            f"flagged: {flagged or 'none'}"
        )
    return lines
