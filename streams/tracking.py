"""MLflow tracking of trained artifacts and per-trial recalibrations: optional, best effort.

Why here, in the streams layer: ``models`` writes the artifact directory and
nothing else (no environment, no network), and that directory is the source of
truth the stream loads. MLflow is a mirror of it for people who browse runs and
promote versions, switched on by ``MLFLOW_TRACKING_URI`` alone.

Every function is a no-op returning None when ``MLFLOW_TRACKING_URI`` is unset.
When it is set but mlflow is not installed, or the tracking server fails, one
line goes to stderr naming ``MLFLOW_TRACKING_URI`` (its user:password part
masked) and the cause, and the function returns None: training never fails,
nor waits for minutes, because of MLflow. Only ``set_alias`` on an artifact
version the registry does not hold raises (``TrackingError``): that is a
mistake in the request, not an outage.

The booster is logged with ``mlflow.lightgbm.log_model``, which saves a
``lightgbm.Booster`` with its own ``save_model`` (LightGBM's native text, no
pickle; only scikit-learn wrappers go through skops/cloudpickle), with the rest
of the artifact (calibration, tiers, card) as the model's extra files.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

ENV_URI = "MLFLOW_TRACKING_URI"
ENV_MODEL = "MLFLOW_REGISTERED_MODEL"
DEFAULT_MODEL = "trialwatch-churn"
VERSION_TAG = "trialwatch_version"
KIND_TAG = "trialwatch_kind"
# MLflow's own defaults retry a dead server for minutes; these apply only when unset.
BOUNDED_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # the run URL would carry userinfo
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # one bar per copied file otherwise
}
MAX_CAUSE_CHARS = 400
RECALIBRATION_PARAMS = ("trial_id", "model_version", "calibration_version", "a", "b")

T = TypeVar("T")


class TrackingError(LookupError):
    """The registry has no model version for the artifact version asked for."""


def enabled() -> bool:
    """Tracking is on when ``MLFLOW_TRACKING_URI`` is set (and not empty)."""
    return bool(os.environ.get(ENV_URI))


def registered_model_name() -> str:
    """The registered model's name: ``MLFLOW_REGISTERED_MODEL`` or "trialwatch-churn"."""
    return os.environ.get(ENV_MODEL) or DEFAULT_MODEL


def mask(text: str) -> str:
    """``scheme://user:password@host`` -> ``scheme://***@host``, anywhere in ``text``."""
    return re.sub(r"(?<=://)[^/\s@]+@", "***@", text)


def log_training(version_dir: Path, card: Mapping) -> str | None:
    """One run for a trained artifact, its model registered; the run id (None when off).

    Run name = the artifact version. Params: the horizon, LightGBM's params, the
    savings assumptions. Metrics: ``card_metrics``. Artifacts: every file of the
    directory. The registered model version carries ``trialwatch_version``.
    """
    version_dir = Path(version_dir)

    def work(mlflow: Any) -> str:
        import lightgbm as lgb

        version = str(card["version"])
        files = sorted(p for p in version_dir.iterdir() if p.is_file())
        with mlflow.start_run(run_name=version) as run:
            mlflow.set_tags({VERSION_TAG: version, KIND_TAG: "training"})
            mlflow.log_params(card_params(card))
            mlflow.log_metrics(card_metrics(card))
            mlflow.log_artifacts(str(version_dir))
            booster = lgb.Booster(model_file=str(version_dir / "model.txt"))
            info = mlflow.lightgbm.log_model(
                booster,
                name="model",
                pip_requirements=[f"lightgbm=={lgb.__version__}"],  # no inference subprocess
                extra_files=[str(p) for p in files if p.name != "model.txt"],
            )
            mlflow.register_model(
                info.model_uri, registered_model_name(), tags={VERSION_TAG: version}
            )
            return run.info.run_id

    return _best_effort(f"logging training run {version_dir.name}", work)


def log_recalibration(version_dir: Path, record: Mapping) -> str | None:
    """One run for a per-trial recalibration of the model in ``version_dir``; its id.

    ``record``: trial_id, model_version, calibration_version, a, b, "before" and
    "after" (dicts of numbers), and "path" (the calibration JSON) if it was written;
    otherwise the record itself is logged as that JSON.
    """
    version_dir = Path(version_dir)

    def work(mlflow: Any) -> str:
        name = f"recalibration {record['trial_id']} {record['calibration_version']}"
        with mlflow.start_run(run_name=name) as run:
            mlflow.set_tags({VERSION_TAG: version_dir.name, KIND_TAG: "recalibration"})
            mlflow.log_params({k: record[k] for k in RECALIBRATION_PARAMS})
            metrics: dict[str, float] = {}
            for side in ("before", "after"):
                _flatten(side, record.get(side) or {}, metrics)
            mlflow.log_metrics(metrics)
            path = record.get("path")
            if path and Path(path).is_file():
                mlflow.log_artifact(str(path))
            else:
                with tempfile.TemporaryDirectory() as tmp:
                    out = Path(tmp) / f"calibration-{_slug(str(record['trial_id']))}.json"
                    out.write_text(json.dumps(dict(record), indent=2, sort_keys=True, default=str))
                    mlflow.log_artifact(str(out))
            return run.info.run_id

    return _best_effort(f"logging recalibration of {version_dir.name}", work)


def set_alias(artifact_version: str, alias: str) -> None:
    """Point a registered-model alias ("champion", "challenger") at the model version
    tagged ``trialwatch_version=artifact_version``; ``TrackingError`` if there is none."""

    def work(mlflow: Any) -> None:
        client = mlflow.MlflowClient()
        name = registered_model_name()
        found = [
            v
            for v in client.search_model_versions(f"name = '{name}'")
            if v.tags.get(VERSION_TAG) == artifact_version
        ]
        if not found:
            raise TrackingError(
                f"registered model {name!r} has no version tagged "
                f"{VERSION_TAG}={artifact_version} (was it trained with {ENV_URI} set?)"
            )
        newest = max(found, key=lambda v: int(v.version))
        client.set_registered_model_alias(name, alias, newest.version)

    _best_effort(f"setting alias {alias!r} on {artifact_version}", work)


def card_params(card: Mapping) -> dict[str, Any]:
    """What the run was trained with: horizon, LightGBM params, savings assumptions."""
    params: dict[str, Any] = {"horizon_days": card["horizon_days"]}
    params.update(card["model"]["params"])
    assumptions = (card.get("savings") or {}).get("assumptions") or {}
    for key in ("efficacy", "replacement_cost_usd"):
        if key in assumptions:
            params[f"savings.{key}"] = assumptions[key]
    for tier, usd in (assumptions.get("outreach_usd") or {}).items():
        params[f"savings.outreach_usd.{tier}"] = usd
    return params


def card_metrics(card: Mapping) -> dict[str, float]:
    """The card's numbers as flat metric names: test metrics, ratio to the oracle,
    transfer (test split and shifted worlds, keyed by the world's short name) and the
    savings blocks. Strings, lists and None are left out; so are the worlds' settings."""
    out: dict[str, float] = {}
    _flatten("test", card.get("test_metrics") or {}, out)
    _flatten("ratio_to_oracle", card.get("ratio_to_oracle") or {}, out)
    for world, row in (card.get("transfer") or {}).items():
        numbers = {k: v for k, v in row.items() if k != "data"}
        _flatten(f"transfer.{_slug(world.split(' (')[0])}", numbers, out)
    savings = card.get("savings") or {}
    for block, values in savings.items():
        if block not in ("assumptions", "policy") and isinstance(values, Mapping):
            _flatten(f"savings.{block}", values, out)
    return out


def _flatten(prefix: str, values: Mapping, out: dict[str, float]) -> None:
    for key, value in values.items():
        name = f"{prefix}.{_slug(str(key))}"
        if isinstance(value, Mapping):
            _flatten(name, value, out)
        elif _is_number(value):
            out[name] = float(value)


def _is_number(value: object) -> bool:
    """A finite int or float; bools (an int subclass) are not metrics."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value)


def _slug(text: str) -> str:
    """A metric-name-safe piece: letters, digits, _ . - only."""
    return re.sub(r"[^\w.\-]+", "_", text.strip()).strip("_") or "_"


def _best_effort(action: str, work: Callable[[Any], T]) -> T | None:
    """Run ``work(mlflow)`` when tracking is on; on any failure one line, None."""
    if not enabled():
        return None
    try:
        import mlflow
        import mlflow.lightgbm  # a submodule ``import mlflow`` may not load
    except ImportError as exc:
        _say(action, f"mlflow is not installed ({exc}); pip install 'trialwatch[mlflow]'")
        return None
    try:
        with _bounded():
            return work(mlflow)
    except TrackingError:
        raise
    except Exception as exc:  # any MLflow, HTTP, database or file error: MLflow is a mirror
        _say(action, f"{type(exc).__name__}: {exc}")
        return None


def _say(action: str, cause: str) -> None:
    uri = mask(os.environ.get(ENV_URI, ""))
    cause = " ".join(mask(cause).split())
    if len(cause) > MAX_CAUSE_CHARS:  # keep the tail: the root cause is quoted last
        head = MAX_CAUSE_CHARS // 3
        cause = f"{cause[:head]} ... {cause[head - MAX_CAUSE_CHARS + 5 :]}"
    print(
        f"trialwatch: MLflow {action} skipped ({ENV_URI}={uri}): {cause}; "
        "the artifact directory is unaffected",
        file=sys.stderr,
    )


@contextmanager
def _bounded() -> Iterator[None]:
    """MLflow's settings for this call: ``BOUNDED_ENV`` where unset; its INFO chatter
    (database migrations on first use) and urllib3's retry warnings off, so a
    failure is the one line ``_say`` prints. All restored afterwards."""
    added = [k for k in BOUNDED_ENV if k not in os.environ]
    for key in added:
        os.environ[key] = BOUNDED_ENV[key]
    quieter = {"mlflow": logging.WARNING, "urllib3.connectionpool": logging.ERROR}
    loggers = {logging.getLogger(name): floor for name, floor in quieter.items()}
    levels = {logger: logger.level for logger in loggers}
    for logger, floor in loggers.items():
        logger.setLevel(max(logger.level, floor))
    try:
        yield
    finally:
        for logger, level in levels.items():
            logger.setLevel(level)
        for key in added:
            os.environ.pop(key, None)
