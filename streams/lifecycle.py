"""What ``promote``, ``rollback``, ``shadow`` and ``recalibrate`` do (commands are wiring).

Each validates first (``streams.model.load_version``: features, card, smoke
scores), then writes one record to the model-control topic, which every
worker follows (``streams.control``). The artifact directory stays the source
of truth: ``promote`` also moves LATEST, so a worker started on an empty
control topic serves the same champion.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from trialwatch.models import artifacts
from trialwatch.models.exceptions import ArtifactError
from trialwatch.streams import control, tracking
from trialwatch.streams.admin import ensure_topics
from trialwatch.streams.console import console, make_console
from trialwatch.streams.model import load_version
from trialwatch.streams.recalibrator import tracking_record
from trialwatch.streams.settings import Settings


def _validated(s: Settings, version: str, command: str) -> None:
    try:
        load_version(s.model_dir, version)
    except (ArtifactError, OSError) as exc:
        raise SystemExit(f"trialwatch {command}: {version} is not servable: {exc}") from None
    console.print(f"validated {escape(version)}: features, model card, smoke scores")


def _current_champion(s: Settings, state: control.ControlState) -> str | None:
    if state.champion is not None:
        return state.champion
    try:
        return artifacts.resolve(s.model_dir).name
    except ArtifactError:
        return None


async def promote(s: Settings, version: str, issued_by: str = "promote") -> None:
    """Make ``version`` the champion on every worker; the old one is kept for rollback."""
    _validated(s, version, issued_by)
    await ensure_topics(s)
    state = await control.read_state(s)
    current = _current_champion(s, state)
    if current == version:
        console.print(f"{escape(version)} is already the champion")
        return
    await control.publish(
        s,
        control.control_record(
            control.CHAMPION, issued_by, model_version=version, previous_version=current
        ),
    )
    artifacts.publish_latest(Path(s.model_dir), version)
    tracking.set_alias(version, "champion")
    console.print(
        f"[green]champion is now {escape(version)}[/green] (was {escape(str(current))}); "
        "workers switch between two micro-batches"
    )


async def rollback(s: Settings) -> None:
    """Return to the champion before the current one (one step; again to undo)."""
    state = await control.read_state(s)
    if state.champion is None or state.previous is None:
        raise SystemExit("trialwatch rollback: no promotion on the control topic to roll back")
    await promote(s, state.previous, issued_by="rollback")


async def shadow(s: Settings, version: str | None) -> None:
    """Score every event with ``version`` too, to risk-scores.shadow; None stops it."""
    if version is not None:
        _validated(s, version, "shadow")
    await ensure_topics(s)
    await control.publish(
        s, control.control_record(control.CHALLENGER, "shadow", model_version=version)
    )
    if version is None:
        console.print("shadow scoring stopped")
        return
    tracking.set_alias(version, "challenger")
    console.print(
        f"[green]{escape(version)} scores every event to {escape(s.shadow_scores_topic)}"
        "[/green]; it never alerts"
    )


def recalibrate(s: Settings, path: Path, trial_id: str, model_dir: Path) -> Any:
    """Fit ``trial_id``'s map from a history; write the artifact; print before/after."""
    from trialwatch.producers.recalibration import recalibrate_file

    with console.status(f"replaying {path.name} through the model..."):
        try:
            result = recalibrate_file(path, model_dir, trial_id, s.alert_policy)
        except ValueError as exc:
            raise SystemExit(f"trialwatch recalibrate: {exc}") from None
    proposal = result["proposal"]
    out = make_console()
    out.print(
        f"{result['records']:,} records ({result['rejected']:,} rejected); "
        f"model {escape(result['scorer'].version)}, trial {escape(trial_id)}"
    )
    out.print(before_after_table(proposal.report))
    if proposal.calibration is None:
        out.print(f"no recalibration: {escape(proposal.reason)}")
        return None
    cal = proposal.calibration
    written = control.write_calibration(result["scorer"].path.parent, cal)
    out.print(
        f"[green]calibration {escape(cal.version)}[/green]: p' = sigmoid({cal.a:.4f} + "
        f"{cal.b:.4f} * logit(p)); tiers HIGH >= {cal.tiers.thresholds['HIGH']:.3f}, "
        f"CRITICAL >= {cal.tiers.thresholds['CRITICAL']:.3f}"
    )
    out.print(f"written to {escape(str(written))}")
    tracking.log_recalibration(written.parents[2], tracking_record(cal, written))
    return cal


def before_after_table(report: dict[str, Any]) -> Table:
    table = Table(title="matured predictions of the trial", title_justify="left")
    for name in ("", "n", "pos", "mean p", "rate", "p/rate", "Brier", "ROC"):
        table.add_column(name, justify="left" if not name else "right", no_wrap=True)
    for label in ("before", "after"):
        m = report.get(label)
        if not m:
            continue
        table.add_row(
            label,
            f"{m['n']:,}",
            f"{m['positives']:,}",
            _num(m.get("mean_probability"), 4),
            _num(m.get("realized_rate"), 4),
            _num(m.get("calibration_in_the_large"), 2),
            _num(m.get("brier"), 4),
            _num(m.get("roc_auc"), 3),
        )
    return table


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
