"""HTTP views of a worker (Faust web, bound to 127.0.0.1 unless configured).

GET  /health            broker, Redis, model: 200 ok|degraded, 503 when it cannot work
GET  /progress          restore and throughput, no broker or Redis round trip (benchmarks)
GET  /patients/{id}     live state + latest score, routed to the worker owning the key
POST /score             stateless: a posted event history -> score, CLV, reasons
GET  /model             the model card, what is served (champion, shadow, calibrations), health
GET  /metrics           Prometheus text format
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from aiokafka.protocol.metadata import MetadataRequest
from faust import web

from trialwatch.models.exceptions import ModelError
from trialwatch.models.pipeline import score_history
from trialwatch.models.recalibration import model_of
from trialwatch.models.state import PatientState
from trialwatch.schemas.contract import normalize_event, validate_event
from trialwatch.schemas.exceptions import TrialwatchError
from trialwatch.streams import metrics, runtime
from trialwatch.streams.agents import build_processor  # noqa: F401  (registers the agent first)
from trialwatch.streams.app import app
from trialwatch.streams.tables import patient_to_state

MAX_POSTED_EVENTS = 10_000


async def broker_reachable(timeout_s: float = 2.0) -> tuple[bool, str]:
    """One metadata request for no topics: a broker round trip that costs nothing
    (a request for every topic decodes the whole cluster's metadata in Python,
    tens of ms on a broker with many topics: polled /health slowed scoring)."""
    try:
        client = app.producer._producer.client  # the aiokafka client Faust runs
        node_id = client.get_random_node()
        if node_id is None:
            raise ConnectionError("no broker known")
        await asyncio.wait_for(client.send(node_id, MetadataRequest([])), timeout_s)
    except Exception as exc:  # any failure means "cannot reach the broker"
        return False, f"broker unreachable: {type(exc).__name__}"
    return True, "ok"


def tables_recovered() -> bool:
    """True once Faust has replayed the table changelogs (a readiness signal)."""
    recovery = getattr(app.tables, "recovery", None)
    return bool(recovery is not None and recovery.completed.is_set())


def changelog_records_remaining() -> int:
    """Changelog records this worker's active table partitions still have to replay
    (0 before recovery has read the changelogs' end offsets, and after it)."""
    recovery = getattr(app.tables, "recovery", None)
    return int(recovery.active_remaining_total()) if recovery is not None else 0


@app.page("/health")
async def health(self: web.View, request: web.Request) -> web.Response:
    broker_ok, broker_detail = await broker_reachable()
    scorer = runtime.model.loaded
    redis_ok = await runtime.cache().ping()
    reasons = []
    if not broker_ok:
        reasons.append(broker_detail)
    if scorer is None:
        reasons.append(runtime.model.error or "model not loaded")
    if not redis_ok:
        reasons.append(runtime.cache().degraded_reason or "redis unreachable")
    if not broker_ok or scorer is None:
        status, code = "unavailable", 503
    else:
        status, code = ("degraded", 200) if not redis_ok else ("ok", 200)
    body = {
        "status": status,
        "reasons": reasons,
        "broker": broker_detail,
        "redis": "ok" if redis_ok else "degraded",
        "model_version": scorer.version if scorer else None,
        "tables_recovered": tables_recovered(),
        "changelog_remaining": changelog_records_remaining(),
        "outcomes": metrics.outcome_counts(),
        "progress": metrics.PROGRESS,
    }
    return self.json(body, status=code)


@app.page("/progress")
async def progress(self: web.View, request: web.Request) -> web.Response:
    """What ``/health`` says of restore and throughput, without its broker and
    Redis round trips: what a benchmark polls several times a second, so that the
    polling costs the worker nothing of what it times."""
    return self.json(
        {
            "tables_recovered": tables_recovered(),
            "changelog_remaining": changelog_records_remaining(),
            "progress": metrics.PROGRESS,
        }
    )


def state_view(state: PatientState) -> dict[str, Any]:
    """The parts of the state an operator needs; enrollment attributes stay out."""
    keys = (
        "patient_id", "trial_id", "site_id", "phase", "enrolled_at", "last_event_time",
        "completed_visits", "missed_visits", "resolved_visits", "planned_visits",
        "ended", "end_type", "last_alert_tier", "last_alert_at",
    )  # fmt: skip
    return {k: getattr(state, k, None) for k in keys}


@app.page("/patients/{patient_id}")
@app.table_route(table=patient_to_state, match_info="patient_id")
async def patient(self: web.View, request: web.Request, patient_id: str) -> web.Response:
    state = patient_to_state.get(patient_id.encode())
    if state is None:
        return self.json({"error": f"unknown patient {patient_id}"}, status=404)
    latest = await runtime.cache().latest_score(patient_id)
    return self.json({"state": state_view(state), "latest_score": latest})


@app.page("/score")
class ScoreView(web.View):
    async def post(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            events = body["events"] if isinstance(body, dict) else body
            if not isinstance(events, list) or not events:
                raise ValueError("expected a non-empty list of events under 'events'")
            if len(events) > MAX_POSTED_EVENTS:
                raise ValueError(f"at most {MAX_POSTED_EVENTS} events per request")
            checked = [validate_event(normalize_event(e)) for e in events]
            if len({e["patient_id"] for e in checked}) != 1:
                raise ValueError("all events must belong to one patient")
        except (ValueError, KeyError, TypeError, TrialwatchError) as exc:
            return self.json({"error": f"bad request: {exc}"}, status=400)
        try:
            result = score_history(checked, runtime.model.get(), runtime.settings.alert_policy)
        except ModelError as exc:
            return self.json({"error": str(exc), "reason": exc.reason}, status=422)
        return self.json(_finite(result))


def _finite(obj: Any) -> Any:
    """JSON has no NaN: turn non-finite floats into null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


IS_THE_MODEL_STILL_RIGHT = {
    "realized": "matured predictions of the trials this worker aggregates (all of them "
    "on the model-metrics topic): roc_auc/pr_auc rank quality, brier overall error, "
    "calibration_in_the_large = mean probability / realized rate (1 is right, 2 means "
    "it predicts twice the withdrawals that happen), calibration_slope (1 is right)",
    "drift": "PSI of each feature and the score in this worker's window of a trial vs "
    "the training rows: >= 0.10 moderate, >= 0.25 major; protocol and trial-age "
    "features are shown, never flagged",
    "when_an_alert_fires": "calibration off: recalibrate the trial from its matured "
    "outcomes; ROC-AUC below the card's test value: retrain (trialwatch train --events); "
    "a major PSI: check the feature's source for a change first, then retrain",
}


@app.page("/model")
async def model_card(self: web.View, request: web.Request) -> web.Response:
    """The model card, with what this worker sees of the model's health."""
    from trialwatch.models.drift import flags
    from trialwatch.streams.agents import PROCESSOR
    from trialwatch.streams.monitoring import LATEST

    drift = {}
    for processor in PROCESSOR:
        for trial, psi in processor.drift.publish().items():
            drift[trial] = {"psi": psi, "flags": flags(psi)}
    serving = runtime.model.serving()
    monitoring = {
        "realized": [
            {"role": role_of(serving, LATEST[k]["model_version"]), **LATEST[k]}
            for k in sorted(LATEST)
        ],
        "drift": drift,
        "guide": IS_THE_MODEL_STILL_RIGHT,
    }
    card = {**serving.champion.card, "serving": serving_section(serving)}
    return self.json(_finite({**card, "monitoring": monitoring}))


def role_of(serving, served_version: str) -> str:
    """champion, challenger or retired, for a window's served version (model[+cal])."""
    model_version = model_of(served_version)
    if model_version == serving.champion.version:
        return "champion"
    if serving.challenger is not None and model_version == serving.challenger.version:
        return "challenger"
    return "retired"


def serving_section(serving) -> dict[str, Any]:
    """What this worker serves: versions, each trial's calibration and its card entry."""
    challenger = serving.challenger
    return {
        "champion": serving.champion.version,
        "challenger": None if challenger is None else challenger.version,
        "challenger_test_metrics": None
        if challenger is None
        else (challenger.card.get("test_metrics") or {}).get("lightgbm"),
        "calibrations": [cal.to_json() for _, cal in sorted(serving.champion.calibrations.items())],
    }


@app.page("/metrics")
async def prometheus(self: web.View, request: web.Request) -> web.Response:
    return self.bytes(metrics.render(), content_type="text/plain; version=0.0.4")
