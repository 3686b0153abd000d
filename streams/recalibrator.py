"""Automatic per-trial recalibration in the worker that owns the trial's outcome window.

The owner of a ``<served version>|<trial>`` window (``streams.tables``) is the
one worker that decides for that trial, so N workers never race. It considers
a window when the window is the one the trial is served under now, and either:
- the window has settled: it did not change during the last timer interval
  while this worker had consumed its visit-events and model-outcomes
  partitions to their ends. A replayed history is fitted once, on all of it,
  so the worker's map equals ``trialwatch recalibrate`` on the same file;
- or it kept changing for ``BUSY_TICKS`` intervals (a busy live stream never
  settles; the fit then counts what has matured so far).
``models.recalibration.propose`` applies the guardrails. An accepted map is
written beside the model (``<model>/calibrations/<trial>/``), logged to MLflow
when configured, and published to the control topic, from which every worker,
this one included, starts serving it. Turned off by TRIALWATCH_AUTO_RECALIBRATE=0.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from trialwatch.models.monitoring import OutcomeWindow
from trialwatch.models.recalibration import Calibration, RecalibrationPolicy
from trialwatch.producers.recalibration import propose_on
from trialwatch.streams import control, metrics
from trialwatch.streams.model import ModelHolder

log = logging.getLogger(__name__)

BUSY_TICKS = 150  # 5 minutes of 2 s intervals


@dataclass
class AutoRecalibrator:
    holder: ModelHolder
    publish: Callable[[Calibration], Awaitable[None]]
    caught_up: Callable[[], bool]
    policy: RecalibrationPolicy = field(default_factory=RecalibrationPolicy)
    changing: dict[bytes, int] = field(default_factory=dict)  # key -> ticks it kept changing
    decided: dict[bytes, int] = field(default_factory=dict)  # key -> outcome count last judged
    pending: dict[str, str] = field(default_factory=dict)  # trial -> published, not yet served

    async def tick(self, changed: set[bytes], windows: Callable[[bytes], OutcomeWindow | None]):
        """One timer interval: ``changed`` are the window keys counted into during it."""
        settled = [k for k in self.changing if k not in changed]
        for key in changed:
            self.changing[key] = self.changing.get(key, 0) + 1
        due = [k for k in settled if self.caught_up()]
        due += [k for k, n in self.changing.items() if n >= BUSY_TICKS and k not in due]
        for key in due:
            self.changing.pop(key, None)
            window = windows(key)
            if window is not None:
                await self.consider(key, window)

    async def consider(self, key: bytes, window: OutcomeWindow) -> Calibration | None:
        champion = self.holder.serving().champion
        served = champion.calibrations.get(window.trial_id)
        if served is not None and self.pending.get(window.trial_id) == served.version:
            del self.pending[window.trial_id]  # every worker serves it now, this one too
        if window.model_version != champion.served_version(window.trial_id):
            return None  # an old version's window, or a challenger's
        if window.trial_id in self.pending:
            return None  # published; this window's version is on its way out
        n = sum(sum(c.pos) + sum(c.neg) for c in window.weeks.values())
        if self.decided.get(key) == n:
            return None  # judged these very counts already
        self.decided[key] = n
        proposal = propose_on(window, champion, self.policy)
        cal = proposal.calibration
        if cal is None:
            metrics.RECALIBRATIONS.labels("declined").inc()
            log.info("trial %s: no recalibration (%s)", window.trial_id, proposal.reason)
            return None
        self.pending[window.trial_id] = cal.version
        metrics.RECALIBRATIONS.labels("published").inc()
        before, after = proposal.report["before"], proposal.report["after"]
        log.info(
            "trial %s: calibration %s from %s outcomes: mean p / rate %.2f -> %.2f",
            window.trial_id,
            cal.version,
            before["n"],
            before["calibration_in_the_large"],
            after["calibration_in_the_large"],
        )
        await self.publish(cal)
        return cal


async def publish_calibration(settings, cal: Calibration, worker_id: str) -> None:
    """Write the artifact (best effort: the control record carries all of it),
    log it to MLflow when configured, and send it to every worker."""
    from trialwatch.streams import tracking

    try:
        path = await asyncio.to_thread(control.write_calibration, settings.model_dir, cal)
    except OSError as exc:
        log.warning("calibration %s not written beside the model: %s", cal.version, exc)
        path = None
    version_dir = Path(settings.model_dir) / cal.model_version
    await asyncio.to_thread(tracking.log_recalibration, version_dir, tracking_record(cal, path))
    await control.publish(settings, control.calibration_record(cal, f"worker:{worker_id}"))


def tracking_record(cal: Calibration, path: Path | None) -> dict:
    """What ``streams.tracking.log_recalibration`` logs of a calibration."""
    return {
        "trial_id": cal.trial_id,
        "model_version": cal.model_version,
        "calibration_version": cal.version,
        "a": cal.a,
        "b": cal.b,
        "before": _numbers(cal.report.get("before")),
        "after": _numbers(cal.report.get("after")),
        "path": None if path is None else str(path),
    }


def _numbers(values: dict | None) -> dict:
    return {k: v for k, v in (values or {}).items() if isinstance(v, int | float)}
