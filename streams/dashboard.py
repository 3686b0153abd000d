"""The coordinator dashboard, served by the worker's own Faust web server.

GET  /dashboard                                   portfolio: trials x sites, KRI flags
GET  /dashboard/sites/{trial_id}/{site_id}        work-queue + the site's KRIs over time
GET  /dashboard/sites/{trial_id}/{site_id}/queue.csv   the work-queue as CSV
GET  /dashboard/patients/{patient_id}             participant (routed to the owning worker)
GET  /dashboard/model                             model card and plots
GET  /dashboard/model/plots/{name}                a plot of the champion's artifact
GET  /dashboard/upload, POST /dashboard/upload    score an event file through the backfill
POST /dashboard/alerts/{alert_id}/ack             acknowledge an alert (-> alert-actions)
POST /dashboard/alerts/{alert_id}/assign          assign it (form field ``assignee``)
GET  /dashboard/static/htmx.min.js                vendored htmx (streams.webapp)

Pages and their ``?part=...`` fragments (what htmx polls) read what every worker
shares (Redis, via ``streams.dashstore.DashStore``), so any worker answers them;
the participant page needs the patient's state and is routed to its owner.
Who may call any of this: ``streams.access``.
"""

from __future__ import annotations

import base64
import binascii
import logging
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from aiohttp import web as aioweb
from faust import web

from trialwatch.models.features import features
from trialwatch.models.state import PatientState
from trialwatch.producers.backfill import backfill_events
from trialwatch.producers.files import EVENT_SUFFIXES, read_events
from trialwatch.streams import dashpages as pages
from trialwatch.streams import runtime, webapp
from trialwatch.streams.actions import ActionError
from trialwatch.streams.app import app
from trialwatch.streams.tables import patient_to_state

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 4 * 1024 * 1024
MAX_SHOWN = 500  # rows of an upload's result shown (all are counted)
ACTIONS = {"ack": "ACKNOWLEDGED", "assign": "ASSIGNED"}
UPLOAD_SUFFIXES = EVENT_SUFFIXES

webapp.serve_static(app)


def dash_store():
    """The shared Redis projection (``streams.dashstore``), one per process."""
    return runtime.dashstore()


def now_ms() -> int:
    return int(time.time() * 1000)


async def portfolio_data(store) -> list[tuple[str, list[dict]]]:
    return [(trial, await store.site_rows(trial)) for trial in sorted(await store.trials())]


def _unavailable(self: web.View, title: str, exc: Exception) -> web.Response:
    log.warning("dashboard: %s unavailable: %s", title, type(exc).__name__)
    return self.html(
        pages.error_page(title, f"the dashboard's data is unavailable ({type(exc).__name__})"),
        status=503,
    )


@app.page("/dashboard")
async def portfolio(self: web.View, request: web.Request) -> web.Response:
    try:
        store = dash_store()
        trials, fresh = await portfolio_data(store), await store.freshness()
    except Exception as exc:  # Redis down, no projection yet: one clear page
        return _unavailable(self, "Portfolio", exc)
    if request.query.get("part") == "portfolio":
        return self.html(pages.portfolio_fragment(trials, fresh, now_ms()))
    return self.html(pages.portfolio_page(trials, fresh, now_ms()))


@app.page("/dashboard/sites/{trial_id}/{site_id}")
async def site(self: web.View, request: web.Request, trial_id: str, site_id: str) -> web.Response:
    try:
        store = dash_store()
        part = request.query.get("part")
        fresh = await store.freshness()
        if part == "queue":
            queue = await store.queue(trial_id, site_id)
            return self.html(pages.queue_fragment(trial_id, site_id, queue, fresh, now_ms()))
        if part == "kris":
            history = await store.kri_history(trial_id, site_id)
            return self.html(pages.kri_history_fragment(history))
        queue = await store.queue(trial_id, site_id)
        history = await store.kri_history(trial_id, site_id)
    except Exception as exc:
        return _unavailable(self, f"Site {site_id}", exc)
    return self.html(pages.site_page(trial_id, site_id, queue, history, fresh, now_ms()))


@app.page("/dashboard/sites/{trial_id}/{site_id}/queue.csv")
async def site_csv(
    self: web.View, request: web.Request, trial_id: str, site_id: str
) -> web.Response:
    try:
        queue = await dash_store().queue(trial_id, site_id)
    except Exception as exc:
        return _unavailable(self, f"Site {site_id}", exc)
    name = f"queue-{trial_id}-{site_id}.csv".replace('"', "")
    return self.bytes(
        pages.queue_csv(queue).encode("utf-8"),
        content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def state_dict(state: PatientState) -> dict[str, Any]:
    """What the participant page shows of the state: its course, never the person."""
    keys = (
        "patient_id", "trial_id", "site_id", "phase", "enrolled_at", "last_event_time",
        "completed_visits", "missed_visits", "resolved_visits", "planned_visits",
        "ended", "end_type", "ended_at", "visits", "aes", "epros", "contacts",
    )  # fmt: skip
    return {k: getattr(state, k, None) for k in keys}


def both_reasons(state: PatientState) -> dict | None:
    """TreeSHAP drivers in both directions at the patient's latest event."""
    scorer = runtime.model.loaded
    if scorer is None or state.ended:
        return None
    x = features(state, state.last_event_time)
    return scorer.explain_both(x, k=3)


@app.page("/dashboard/patients/{patient_id}")
@app.table_route(table=patient_to_state, match_info="patient_id")
async def participant(self: web.View, request: web.Request, patient_id: str) -> web.Response:
    state = patient_to_state.get(patient_id.encode())
    latest, trajectory, wall_ms = None, [], None
    try:
        latest = await runtime.cache().latest_score(patient_id)
        trajectory = await dash_store().trajectory(patient_id)
        wall_ms = (await dash_store().freshness()).get("wall_time")
    except Exception as exc:  # the state and reasons still show
        log.warning("dashboard: participant scores unavailable: %s", type(exc).__name__)
    both = both_reasons(state) if state is not None else None
    fragment = pages.patient_fragment(
        patient_id,
        None if state is None else state_dict(state),
        latest,
        both,
        trajectory,
        now_ms(),
        wall_ms,
    )
    status = 404 if state is None else 200
    if request.query.get("part") == "patient":
        return self.html(fragment, status=status)
    return self.html(pages.patient_page(patient_id, fragment), status=status)


def plot_names(scorer) -> list[str]:
    path = getattr(scorer, "path", None)
    return sorted(p.name for p in Path(path).glob("*.png")) if path else []


@app.page("/dashboard/model")
async def model(self: web.View, request: web.Request) -> web.Response:
    try:
        champion = runtime.model.serving().champion
    except Exception as exc:
        return _unavailable(self, "Model", exc)
    return self.html(
        pages.model_page(champion.version, champion.card, plot_names(champion), now_ms())
    )


@app.page("/dashboard/model/plots/{name}")
async def model_plot(self: web.View, request: web.Request, name: str) -> web.Response:
    champion = runtime.model.serving().champion
    if name not in plot_names(champion):  # only the artifact's own plots, no paths
        return self.text("no such plot\n", status=404)
    return self.bytes((Path(champion.path) / name).read_bytes(), content_type="image/png")


# ------------------------------------------------------------------- upload


class UploadTooLarge(ValueError):
    pass


async def read_upload(request: web.Request, limit: int = MAX_UPLOAD_BYTES) -> tuple[str, bytes]:
    """(file name, bytes) of the form's ``events`` file; at most ``limit`` bytes."""
    if request.content_length is not None and request.content_length > limit + 64 * 1024:
        raise UploadTooLarge(too_large(limit))
    reader = await request.multipart()
    while True:
        part = await reader.next()
        if part is None:
            raise ValueError("no file in the form (field 'events')")
        if getattr(part, "name", None) != "events":
            continue
        data = bytearray()
        while chunk := await part.read_chunk(64 * 1024):
            data += chunk
            if len(data) > limit:
                raise UploadTooLarge(too_large(limit))
        return part.filename or "", bytes(data)


def too_large(limit: int) -> str:
    return f"the file is larger than the upload limit of {limit // 1024:,} KiB: split it"


def score_file(name: str, data: bytes, scorer, policy) -> dict:
    """Score an uploaded event file through the backfill path: nothing published,
    no table touched. Bad rows are reported by their 1-based number."""
    suffix = Path(name).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        return {
            "error": f"unknown file type {suffix or '(none)'}: use {', '.join(UPLOAD_SUFFIXES)}"
        }
    with tempfile.TemporaryDirectory(prefix="trialwatch-upload-") as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(data)
        records = ((r.number, r.event, r.error) for r in read_events(path))
        outcomes: Counter[str] = Counter()
        bad, latest, alerts, max_time, n = [], {}, [], None, 0
        for record in backfill_events(records, scorer, policy):
            n += 1
            outcomes[record.outcome] += 1
            if record.outcome == "dead_lettered":
                bad.append((record.number, record.reason or "bad record"))
            if record.score is not None:
                latest[record.score["patient_id"]] = record.score
                t = record.score["event_time"]
                max_time = t if max_time is None else max(max_time, t)
            if record.alert is not None:
                alerts.append(record.alert)
    scores = sorted(latest.values(), key=lambda s: -(s.get("value_at_risk") or 0.0))
    return {
        "records": n,
        "outcomes": dict(outcomes),
        "bad": bad[:MAX_SHOWN],
        "scores": scores[:MAX_SHOWN],
        "alerts": alerts[:MAX_SHOWN],
        "max_event_time": max_time,
    }


@app.page("/dashboard/upload")
class Upload(web.View):
    async def get(self, request: web.Request) -> web.Response:
        return self.html(pages.upload_page(MAX_UPLOAD_BYTES))

    async def post(self, request: web.Request) -> web.Response:
        try:
            name, data = await read_upload(request)
        except UploadTooLarge as exc:
            report = {"error": str(exc)}
            return self.html(
                pages.upload_page(MAX_UPLOAD_BYTES, pages.upload_result(report, 0)), status=413
            )
        except (ValueError, AssertionError, aioweb.HTTPException) as exc:
            report = {"error": f"bad upload: {getattr(exc, 'text', None) or exc}"}
            return self.html(
                pages.upload_page(MAX_UPLOAD_BYTES, pages.upload_result(report, 0)), status=400
            )
        try:
            report = score_file(name, data, runtime.model.get(), runtime.settings.alert_policy)
        except Exception as exc:  # the model cannot score: one clear line
            report = {"error": f"cannot score the file: {type(exc).__name__}: {exc}"}
        status = 400 if report.get("error") else 200
        body = pages.upload_result(report, now_ms())
        return self.html(pages.upload_page(MAX_UPLOAD_BYTES, body), status=status)


# ------------------------------------------------------------------ actions


def actor_of(request: web.Request) -> str:
    """Who acted, for the audit record: the basic-auth user, else how they came in."""
    scheme, _, value = (request.headers.get("Authorization") or "").partition(" ")
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(value.strip(), validate=True).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            return "basic-auth"
    if scheme.lower() == "bearer":
        return "token"
    return "loopback"


async def find_alert(store, patient_id: str, alert_id: str) -> dict | None:
    """The projection's alert plus the ids ``send_action`` needs, or None: the
    server's own record (trial and site from the latest score), never the form's."""
    alert = await store.alert(patient_id, alert_id)
    score = await store.latest_score(patient_id)
    if alert is None or score is None:
        return None
    return {
        **alert,
        "patient_id": patient_id,
        "trial_id": score["trial_id"],
        "site_id": score["site_id"],
    }


async def act(self: web.View, request: web.Request, alert_id: str, verb: str) -> web.Response:
    form = await request.post()
    patient_id = str(form.get("patient_id", ""))
    assignee = (str(form.get("assignee", "")).strip() or None) if verb == "assign" else None
    if verb == "assign" and assignee is None:
        return self.text("assign needs an assignee\n", status=400)
    store = dash_store()
    alert = await find_alert(store, patient_id, alert_id)
    if alert is None:
        return self.text("no such alert in this site's queue\n", status=404)
    trial_id, site_id = alert["trial_id"], alert["site_id"]
    from trialwatch.streams.worklist import send_action  # the app discovers it

    try:
        await send_action(alert, ACTIONS[verb], actor_of(request), assignee)
    except ActionError as exc:
        return self.text(f"refused: {exc}\n", status=400)
    if request.headers.get("HX-Request"):
        queue = await store.queue(trial_id, site_id)
        fresh = await store.freshness()
        return self.html(pages.queue_fragment(trial_id, site_id, queue, fresh, now_ms()))
    raise aioweb.HTTPSeeOther(f"/dashboard/sites/{pages.u(trial_id)}/{pages.u(site_id)}")


@app.page("/dashboard/alerts/{alert_id}/ack")
class Acknowledge(web.View):
    async def post(self, request: web.Request, alert_id: str) -> web.Response:
        return await act(self, request, alert_id, "ack")


@app.page("/dashboard/alerts/{alert_id}/assign")
class Assign(web.View):
    async def post(self, request: web.Request, alert_id: str) -> web.Response:
        return await act(self, request, alert_id, "assign")
