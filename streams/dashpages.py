"""The dashboard's HTML: pure functions from dicts to strings (no Faust, no Redis).

Every value that comes from data goes through ``e`` (``html.escape``); the only
markup not escaped is built here. Pages are a layout plus "live" blocks that htmx
re-fetches every 2 s (``hx-get`` of the same URL with ``?part=...``), so a page
updates without a reload. Pseudonymous ids only: no age, sex, distance, arm or
other enrolment attribute is ever rendered (``models.reasons.shown_text``).
"""

from __future__ import annotations

import csv
import io
import math
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import quote

from trialwatch.models.reasons import ENROLMENT_FEATURES, shown_text

STATIC = "/dashboard/static"
POLL = "every 2s [pollable()]"
TIER_ORDER = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
TIER_COLOURS = {"LOW": "#2e7d32", "MEDIUM": "#f9a825", "HIGH": "#ef6c00", "CRITICAL": "#c62828"}
FLAG_COLOURS = {"green": "#c8e6c9", "amber": "#ffe0b2", "red": "#ffcdd2", "none": "#eeeeee"}


def e(value: Any) -> str:
    """Text for HTML (element content and quoted attributes)."""
    return escape("" if value is None else str(value), quote=True)


def u(value: Any) -> str:
    """A path segment."""
    return quote(str(value), safe="")


def fmt_time(ms: Any) -> str:
    if ms is None or ms == "":
        return "—"
    try:
        return datetime.fromtimestamp(int(ms) / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    except (TypeError, ValueError, OverflowError, OSError):
        return "—"


def fmt_prob(p: Any) -> str:
    try:
        value = float(p)
    except (TypeError, ValueError):
        return "—"
    return "—" if not math.isfinite(value) else f"{value:.1%}"


def fmt_money(v: Any) -> str:
    try:
        value = float(v)
    except (TypeError, ValueError):
        return "—"
    return "—" if not math.isfinite(value) else f"{value:,.0f}"


def fmt_num(v: Any, digits: int = 2) -> str:
    try:
        value = float(v)
    except (TypeError, ValueError):
        return "—"
    return "—" if not math.isfinite(value) else f"{value:.{digits}f}"


# ------------------------------------------------------------------ layout


def layout(title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{e(title)} · trialwatch</title>
<script src="{STATIC}/htmx.min.js"></script>
<script>function pollable(){{var a=document.activeElement;
return !(a && (a.tagName==='INPUT' || a.tagName==='SELECT'));}}</script>
<style>{CSS}</style></head>
<body><nav><a href="/dashboard">Portfolio</a> · <a href="/dashboard/model">Model</a> ·
<a href="/dashboard/upload">Score a file</a></nav>
<h1>{e(title)}</h1>
{body}
</body></html>"""


CSS = """body{font:14px system-ui,sans-serif;margin:1.2em;color:#222}
nav{margin-bottom:.5em}table{border-collapse:collapse;margin:.5em 0}
th,td{border:1px solid #ccc;padding:3px 6px;vertical-align:top;text-align:left}
th{background:#f4f4f4}.fresh{color:#555;font-size:12px}.tier{font-weight:bold;color:#fff;
padding:1px 5px;border-radius:3px}.flag{font-size:12px}.muted{color:#777}
.err{color:#b71c1c;font-weight:bold}ul{margin:0;padding-left:1.2em}
form.inline{display:inline}svg{background:#fafafa;border:1px solid #ddd;margin:2px}
.charts{display:flex;flex-wrap:wrap}"""


def live(block_id: str, url: str, inner: str) -> str:
    """A block htmx replaces every 2 s with a fresh GET of ``url`` (a fragment);
    polling pauses while an input has the focus (typing an assignee)."""
    return (
        f'<div id="{e(block_id)}" hx-get="{e(url)}" hx-trigger="{POLL}" '
        f'hx-swap="innerHTML">{inner}</div>'
    )


def freshness(fresh: dict | None, now_ms: int, label: str = "data") -> str:
    fresh = fresh or {}
    return (
        f'<p class="fresh" data-freshness>{e(label)}: event time '
        f'<span class="event-time">{e(fmt_time(fresh.get("event_time")))}</span> · '
        f'written (wall time) <span class="wall-time">{e(fmt_time(fresh.get("wall_time")))}'
        f"</span> · rendered {e(fmt_time(now_ms))}</p>"
    )


def tier_badge(tier: Any) -> str:
    colour = TIER_COLOURS.get(str(tier), "#607d8b")
    return f'<span class="tier" style="background:{colour}">{e(tier)}</span>'


def error_page(title: str, message: str) -> str:
    return layout(title, f'<p class="err">{e(message)}</p>')


# ---------------------------------------------------------------- KRIs


def kri_cells(row: dict) -> list[tuple[str, dict]]:
    """(name, {value, study, z, flag}) of a site row, in a stable order: under
    ``row["kris"]`` when the row nests them, else every dict-valued field with a flag."""
    nested = row.get("kris")
    source = nested if isinstance(nested, dict) else row
    cells = [(k, v) for k, v in source.items() if isinstance(v, dict) and "flag" in v]
    return sorted(cells, key=lambda kv: _kri_rank(kv[0]))


def _kri_specs() -> dict[str, Any]:
    try:
        from trialwatch.models.kri import KRIS
    except ImportError:
        return {}
    return {spec.name: spec for spec in KRIS}


def _kri_rank(name: str) -> tuple[int, str]:
    names = list(_kri_specs())
    return (names.index(name) if name in names else len(names), name)


def kri_label(name: str) -> str:
    spec = _kri_specs().get(name)
    return getattr(spec, "label", None) or name.replace("_", " ")


def kri_cell(name: str, kri: dict) -> str:
    flag = str(kri.get("flag") or "none")
    colour = FLAG_COLOURS.get(flag, "#eeeeee")
    title = f"study {fmt_num(kri.get('study'), 3)}, z {fmt_num(kri.get('z'))}"
    return (
        f'<td class="kri" data-kri="{e(name)}" data-flag="{e(flag)}" '
        f'style="background:{colour}" title="{e(title)}">{e(fmt_num(kri.get("value"), 3))} '
        f'<span class="flag">{e(flag)}</span></td>'
    )


def at_risk(row: dict, tier: str) -> int:
    counts = row.get("at_risk") or {}
    try:
        return int(counts.get(tier, 0))
    except (TypeError, ValueError):
        return 0


def portfolio_fragment(trials: list[tuple[str, list[dict]]], fresh: dict | None, now_ms: int):
    parts = [freshness(fresh, now_ms)]
    if not trials:
        parts.append('<p class="muted" id="empty">No site numbers yet: waiting for events.</p>')
    for trial_id, rows in trials:
        names = []
        for row in rows:
            for name, _ in kri_cells(row):
                if name not in names:
                    names.append(name)
        head = "".join(f"<th>{e(kri_label(n))}</th>" for n in names)
        parts.append(
            f'<h2>Trial {e(trial_id)}</h2><table class="portfolio" data-trial="{e(trial_id)}">'
            f"<tr><th>Site</th><th>Status</th><th>Active</th>{head}<th>HIGH</th><th>CRITICAL</th>"
            f"<th>Value at risk</th><th>As of (event time)</th></tr>"
        )
        for row in rows:
            site = row.get("site_id")
            cells = dict(kri_cells(row))
            kris = "".join(kri_cell(n, cells[n]) if n in cells else "<td>—</td>" for n in names)
            status = str(row.get("status") or "—")
            colour = FLAG_COLOURS.get(status.lower(), "#eeeeee")
            parts.append(
                f'<tr class="site" data-site="{e(site)}">'
                f'<td><a href="/dashboard/sites/{u(trial_id)}/{u(site)}">{e(site)}</a></td>'
                f'<td class="status" style="background:{colour}">{e(status)}</td>'
                f'<td data-col="active">{e(row.get("active", "—"))}</td>{kris}'
                f'<td data-col="high">{at_risk(row, "HIGH")}</td>'
                f'<td data-col="critical">{at_risk(row, "CRITICAL")}</td>'
                f'<td data-col="value_at_risk">{e(fmt_money(row.get("value_at_risk")))}</td>'
                f"<td>{e(fmt_time(row.get('as_of')))}</td></tr>"
            )
        parts.append("</table>")
    return "\n".join(parts)


def portfolio_page(trials, fresh, now_ms) -> str:
    body = live("portfolio", "/dashboard?part=portfolio", portfolio_fragment(trials, fresh, now_ms))
    return layout("Portfolio: trials x sites", body)


# ------------------------------------------------------------ work-queue

QUEUE_FIELDS = (
    "rank", "patient_id", "tier", "probability", "value_at_risk", "clv", "last_event",
    "last_event_time", "reasons", "recommended_action", "alerts", "paged", "actions",
)  # fmt: skip


def reason_texts(reasons: Any) -> list[str]:
    out = []
    for r in reasons or []:
        if isinstance(r, dict):
            feature = r.get("feature")
            if feature in ENROLMENT_FEATURES or (feature and r.get("value") is not None):
                out.append(shown_text(feature, r.get("value")))
            else:
                out.append(str(r.get("text") or feature or ""))
        else:
            out.append(str(r))
    return out


def action_text(action: dict) -> str:
    what = str(action.get("action") or "")
    if what.upper().startswith("ASSIGN") and action.get("assignee"):
        what = f"{what} to {action['assignee']}"
    who = action.get("by") or action.get("actor") or "?"
    return f"{what} by {who} at {fmt_time(action.get('at') or action.get('at_wall_ms'))}"


def queue_record(rank: int, row: dict) -> dict[str, str]:
    """One queue row as text: what the HTML table's ``data-col`` cells show and
    exactly what the CSV export writes."""
    alerts = row.get("alerts") or []
    paged = sum(1 for a in alerts if a.get("paged"))
    actions = [action_text(x) for a in alerts for x in (a.get("actions") or [])]
    return {
        "rank": str(rank),
        "patient_id": str(row.get("patient_id") or ""),
        "tier": str(row.get("tier") or ""),
        "probability": fmt_prob(row.get("probability")),
        "value_at_risk": fmt_money(row.get("value_at_risk")),
        "clv": fmt_money(row.get("clv")),
        "last_event": str(row.get("event_type") or ""),
        "last_event_time": fmt_time(row.get("event_time")),
        "reasons": "; ".join(reason_texts(row.get("reasons"))),
        "recommended_action": str(row.get("recommended_action") or ""),
        "alerts": str(len(alerts)),
        "paged": f"{paged} paged, {len(alerts) - paged} over budget" if alerts else "",
        "actions": "; ".join(actions),
    }


def queue_csv(queue: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=QUEUE_FIELDS, lineterminator="\n")
    writer.writeheader()
    for rank, row in enumerate(queue, start=1):
        writer.writerow(queue_record(rank, row))
    return buf.getvalue()


def alert_controls(alert: dict, row: dict, trial_id: str, site_id: str) -> str:
    alert_id = alert.get("alert_id")
    hidden = (
        f'<input type="hidden" name="trial_id" value="{e(trial_id)}">'
        f'<input type="hidden" name="site_id" value="{e(site_id)}">'
        f'<input type="hidden" name="patient_id" value="{e(row.get("patient_id"))}">'
    )
    target = 'hx-target="#queue" hx-swap="innerHTML"'
    return (
        f'<form class="inline ack" method="post" action="/dashboard/alerts/{u(alert_id)}/ack" '
        f'hx-post="/dashboard/alerts/{u(alert_id)}/ack" {target}>{hidden}'
        f'<button type="submit" class="ack-button" data-alert="{e(alert_id)}">Acknowledge'
        f"</button></form> "
        f'<form class="inline assign" method="post" '
        f'action="/dashboard/alerts/{u(alert_id)}/assign" '
        f'hx-post="/dashboard/alerts/{u(alert_id)}/assign" {target}>{hidden}'
        f'<input name="assignee" placeholder="assignee" size="9" required maxlength="64">'
        f'<button type="submit" class="assign-button" data-alert="{e(alert_id)}">Assign'
        f"</button></form>"
    )


def alert_item(alert: dict, row: dict, trial_id: str, site_id: str) -> str:
    paged = "paged" if alert.get("paged") else "over budget (not paged)"
    actions = "".join(
        f'<li class="action">{e(action_text(a))}</li>' for a in alert.get("actions") or []
    )
    return (
        f'<li class="alert" data-alert="{e(alert.get("alert_id"))}">'
        f"{tier_badge(alert.get('tier'))} {e(fmt_time(alert.get('event_time')))} "
        f'<span class="paged">{e(paged)}</span> '
        f"{alert_controls(alert, row, trial_id, site_id)}"
        f"{f'<ul>{actions}</ul>' if actions else ''}</li>"
    )


def queue_fragment(
    trial_id: str, site_id: str, queue: list[dict], fresh: dict | None, now_ms: int
) -> str:
    parts = [freshness(fresh, now_ms, "work-queue")]
    if not queue:
        parts.append('<p class="muted" id="empty-queue">No participant at risk at this site.</p>')
        return "\n".join(parts)
    head = "".join(
        f"<th>{e(label)}</th>"
        for label in (
            "#", "Participant", "Tier", "Probability", "Value at risk", "CLV", "Last event",
            "Event time", "Top reasons", "Recommended action", "Alerts", "Paged",
        )
    )  # fmt: skip
    parts.append(f'<table class="queue"><tr>{head}<th>Alert history and actions</th></tr>')
    for rank, row in enumerate(queue, start=1):
        rec = queue_record(rank, row)
        pid = row.get("patient_id")
        cells = "".join(f'<td data-col="{col}">{e(rec[col])}</td>' for col in ("rank",))
        cells += (
            f'<td data-col="patient_id"><a href="/dashboard/patients/{u(pid)}">'
            f"{e(rec['patient_id'])}</a></td>"
            f'<td data-col="tier">{tier_badge(rec["tier"])}</td>'
        )
        for col in ("probability", "value_at_risk", "clv", "last_event", "last_event_time"):
            cells += f'<td data-col="{col}">{e(rec[col])}</td>'
        reasons = "".join(f"<li>{e(t)}</li>" for t in reason_texts(row.get("reasons")))
        cells += f'<td data-col="reasons"><ul>{reasons}</ul></td>'
        for col in ("recommended_action", "alerts", "paged"):
            cells += f'<td data-col="{col}">{e(rec[col])}</td>'
        alerts = "".join(alert_item(a, row, trial_id, site_id) for a in row.get("alerts") or [])
        parts.append(
            f'<tr class="queue-row" data-patient="{e(pid)}">{cells}'
            f'<td class="history"><ul>{alerts}</ul></td></tr>'
        )
    parts.append("</table>")
    return "\n".join(parts)


def kri_history_fragment(history: list[dict]) -> str:
    """Small multiples: one line chart per KRI over event time (``as_of``)."""
    if not history:
        return '<p class="muted">No KRI history yet.</p>'
    names: list[str] = []
    for point in history:
        for k, v in point.items():
            if k != "as_of" and isinstance(v, int | float) and k not in names:
                names.append(k)
    names.sort(key=_kri_rank)
    charts = []
    for name in names:
        points = [
            (float(p["as_of"]), float(p[name]))
            for p in history
            if isinstance(p.get(name), int | float)
            and p.get("as_of") is not None
            and math.isfinite(float(p[name]))
        ]
        charts.append(line_chart(points, kri_label(name), css_class=f"kri-chart kri-{name}"))
    return f'<div class="charts">{"".join(charts)}</div>'


def site_page(trial_id, site_id, queue, history, fresh, now_ms) -> str:
    base = f"/dashboard/sites/{u(trial_id)}/{u(site_id)}"
    queue_html = queue_fragment(trial_id, site_id, queue, fresh, now_ms)
    body = (
        f'<p><a href="/dashboard">← portfolio</a> · '
        f'<a id="csv" href="{base}/queue.csv">Export the work-queue as CSV</a></p>'
        f"<h2>Work-queue, ranked by value at risk</h2>"
        f"{live('queue', base + '?part=queue', queue_html)}"
        f"<h2>Site KRIs over time (event time)</h2>"
        f"{live('kris', base + '?part=kris', kri_history_fragment(history))}"
    )
    return layout(f"Site {site_id} · trial {trial_id}", body)


# ------------------------------------------------------------------ charts


def line_chart(
    points: list[tuple[float, float]],
    title: str,
    *,
    width: int = 300,
    height: int = 130,
    y_range: tuple[float, float] | None = None,
    y_format=fmt_num,
    x_format=fmt_time,
    dots: list[str] | None = None,
    css_class: str = "chart",
) -> str:
    """An inline SVG line chart; ``dots`` optionally colours each point."""
    pad_l, pad_r, pad_t, pad_b = 44, 8, 18, 22
    inner_w, inner_h = width - pad_l - pad_r, height - pad_t - pad_b
    head = (
        f'<svg class="{e(css_class)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{e(title)}">'
        f'<text x="{pad_l}" y="12" font-size="11">{e(title)}</text>'
    )
    if not points:
        return head + f'<text x="{pad_l}" y="{height // 2}" font-size="11">no data</text></svg>'
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = y_range if y_range else (min(0.0, min(ys)), max(ys))
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y1 = y0 + 1

    def sx(x: float) -> float:
        return pad_l + (x - x0) / (x1 - x0) * inner_w

    def sy(y: float) -> float:
        return pad_t + inner_h - (y - y0) / (y1 - y0) * inner_h

    path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
    out = [
        head,
        f'<line x1="{pad_l}" y1="{pad_t + inner_h}" x2="{pad_l + inner_w}" '
        f'y2="{pad_t + inner_h}" stroke="#999"/>',
        f'<line x1="{pad_l}" y1="{pad_t}" x2="{pad_l}" y2="{pad_t + inner_h}" stroke="#999"/>',
        f'<text x="2" y="{pad_t + 8}" font-size="10">{e(y_format(y1))}</text>',
        f'<text x="2" y="{pad_t + inner_h}" font-size="10">{e(y_format(y0))}</text>',
        f'<text x="{pad_l}" y="{height - 6}" font-size="9">{e(x_format(x0))}</text>',
        f'<text x="{width - pad_r}" y="{height - 6}" font-size="9" text-anchor="end">'
        f"{e(x_format(x1))}</text>",
        f'<polyline fill="none" stroke="#1565c0" stroke-width="1.5" points="{path}"/>',
    ]
    if dots:
        for (x, y), colour in zip(points, dots, strict=False):
            out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{e(colour)}"/>')
    out.append("</svg>")
    return "".join(out)


# ------------------------------------------------------------- participant


def timeline(state: dict) -> list[tuple[int, str]]:
    """(event time, what happened) from the state's rings, newest first. Clinical
    events only: nothing about the person."""
    items: list[tuple[int, str]] = []
    for number, t, attended, late in state.get("visits") or ():
        what = (
            f"visit {number} completed ({fmt_num(late, 1)} days late)"
            if attended
            else f"visit {number} missed"
        )
        items.append((int(t), what))
    for t, grade, serious in state.get("aes") or ():
        items.append((int(t), f"adverse event, grade {grade}{', serious' if serious else ''}"))
    for t, score in state.get("epros") or ():
        items.append((int(t), f"ePRO answered, score {fmt_num(score, 0)}/100"))
    for t, reached in state.get("contacts") or ():
        items.append((int(t), f"contact attempt, {'reached' if reached else 'not reached'}"))
    if state.get("ended") and state.get("ended_at") is not None:
        items.append((int(state["ended_at"]), f"ended: {state.get('end_type')}"))
    if state.get("enrolled_at") is not None:
        items.append((int(state["enrolled_at"]), "enrolled"))
    return sorted(items, key=lambda it: -it[0])


def reasons_list(reasons: list[dict], css: str) -> str:
    if not reasons:
        return f'<p class="muted {css}">none</p>'
    items = "".join(
        f'<li data-feature="{e(r.get("feature"))}">{e(shown_text(r["feature"], r.get("value")))}'
        f' <span class="muted">({float(r.get("contribution", 0.0)):+.3f} log-odds)</span></li>'
        for r in reasons
    )
    return f'<ul class="{css}">{items}</ul>'


def patient_fragment(
    patient_id: str,
    state: dict | None,
    latest: dict | None,
    both: dict | None,
    trajectory: list[dict],
    now_ms: int,
    wall_ms: int | None = None,
) -> str:
    """``wall_ms``: when the shared projection was last written (its freshness)."""
    fresh = {
        "event_time": (state or {}).get("last_event_time") or (latest or {}).get("event_time"),
        "wall_time": wall_ms,
    }
    parts = [freshness(fresh, now_ms, "participant")]
    if state is None:
        parts.append(f'<p class="err">Unknown participant {e(patient_id)}.</p>')
        return "\n".join(parts)
    site = f"{state.get('trial_id')}/{state.get('site_id')}"
    parts.append(
        f"<p>Trial {e(state.get('trial_id'))}, site "
        f'<a href="/dashboard/sites/{u(state.get("trial_id"))}/{u(state.get("site_id"))}">'
        f"{e(site)}</a> · phase {e(state.get('phase'))} · visits completed "
        f"{e(state.get('completed_visits'))}, missed {e(state.get('missed_visits'))} of "
        f"{e(state.get('planned_visits'))} planned"
        f"{' · ended: ' + e(state.get('end_type')) if state.get('ended') else ''}</p>"
    )
    if latest:
        parts.append(
            f'<p id="latest">Latest score: {tier_badge(latest.get("tier"))} '
            f"P(withdraw within {e(latest.get('horizon_days'))} days) = "
            f"<b>{e(fmt_prob(latest.get('probability')))}</b> · CLV "
            f"{e(fmt_money(latest.get('clv')))} · value at risk "
            f"{e(fmt_money(latest.get('value_at_risk')))} · at "
            f"{e(fmt_time(latest.get('event_time')))} ({e(latest.get('event_type'))})</p>"
        )
    if both is not None:
        parts.append(
            '<div id="reasons"><h2>Why (TreeSHAP, at the latest event)</h2>'
            '<div class="charts"><div><h3>Raises the risk</h3>'
            f"{reasons_list(both.get('raising') or [], 'raising')}</div>"
            '<div style="margin-left:2em"><h3>Lowers the risk</h3>'
            f"{reasons_list(both.get('lowering') or [], 'lowering')}</div></div></div>"
        )
    points, dots = [], []
    for p in trajectory or []:
        try:
            points.append((float(p["event_time"]), float(p["probability"])))
        except (KeyError, TypeError, ValueError):
            continue
        dots.append(TIER_COLOURS.get(str(p.get("tier")), "#607d8b"))
    charts = line_chart(
        points, "score trajectory: P(withdraw), tier colours", width=420, height=170,
        y_range=(0.0, max([0.05] + [y for _, y in points])), y_format=fmt_prob, dots=dots,
        css_class="trajectory",
    )  # fmt: skip
    if latest and latest.get("retention_days") and latest.get("retention"):
        curve = list(zip(latest["retention_days"], latest["retention"], strict=False))
        charts += line_chart(
            [(float(d), float(s)) for d, s in curve],
            f"retention curve S(days) · CLV {fmt_money(latest.get('clv'))}",
            width=420, height=170, y_range=(0.0, 1.0), y_format=fmt_prob,
            x_format=lambda d: f"day {d:.0f}", css_class="retention",
        )  # fmt: skip
    parts.append(f'<div class="charts">{charts}</div>')
    rows = "".join(
        f"<tr><td>{e(fmt_time(t))}</td><td>{e(what)}</td></tr>" for t, what in timeline(state)
    )
    parts.append(
        '<h2>Event timeline (newest first)</h2><table class="timeline">'
        f"<tr><th>Event time</th><th>Event</th></tr>{rows}</table>"
    )
    return "\n".join(parts)


def patient_page(patient_id: str, fragment: str) -> str:
    url = f"/dashboard/patients/{u(patient_id)}?part=patient"
    return layout(f"Participant {patient_id}", live("patient", url, fragment))


# ------------------------------------------------------------------- model


def _value(v: Any, depth: int = 0) -> str:
    if isinstance(v, dict):
        if depth >= 3:
            return e(f"{{{len(v)} fields}}")
        rows = "".join(
            f"<tr><th>{e(k)}</th><td>{_value(x, depth + 1)}</td></tr>" for k, x in v.items()
        )
        return f"<table>{rows}</table>"
    if isinstance(v, list | tuple):
        if len(v) > 30 or depth >= 3:
            return e(f"[{len(v)} items]")
        if all(not isinstance(x, dict | list | tuple) for x in v):
            return e(", ".join(fmt_num(x, 4) if isinstance(x, float) else str(x) for x in v))
        return "<ol>" + "".join(f"<li>{_value(x, depth + 1)}</li>" for x in v) + "</ol>"
    if isinstance(v, float):
        return e(fmt_num(v, 4))
    return e(v)


def model_page(version: str, card: dict, plots: list[str], now_ms: int) -> str:
    images = "".join(
        f'<figure><img alt="{e(p)}" src="/dashboard/model/plots/{u(p)}" width="420">'
        f"<figcaption>{e(p)}</figcaption></figure>"
        for p in plots
    )
    body = (
        freshness({"wall_time": now_ms}, now_ms, "served model")
        + f'<p>Champion <b id="model-version">{e(version)}</b></p>'
        + f'<h2>Plots</h2><div class="charts">{images or "<p class=muted>no plots</p>"}</div>'
        + f'<h2>Model card</h2><div id="card">{_value(card)}</div>'
    )
    return layout("Model", body)


# ------------------------------------------------------------------ upload


def upload_page(max_bytes: int, result: str = "") -> str:
    body = (
        '<form method="post" enctype="multipart/form-data" action="/dashboard/upload">'
        "<p>An event file (JSON lines: .jsonl/.json/.ndjson, or an Avro container: .avro) "
        f"of at most {max_bytes // 1024:,} KiB, scored ad hoc through the backfill path "
        "(nothing is published, no state changes).</p>"
        '<input type="file" name="events" required> <button type="submit">Score</button>'
        f'</form><div id="result">{result}</div>'
    )
    return layout("Score an event file", body)


def upload_result(report: dict, now_ms: int) -> str:
    if report.get("error"):
        return f'<p class="err" id="upload-error">{e(report["error"])}</p>'
    outcomes = ", ".join(f"{e(k)}: {v}" for k, v in sorted(report["outcomes"].items()))
    parts = [
        freshness(
            {"event_time": report.get("max_event_time"), "wall_time": now_ms}, now_ms, "file"
        ),
        f'<p id="upload-summary">{report["records"]} records · {outcomes}</p>',
    ]
    bad = report.get("bad") or []
    if bad:
        rows = "".join(
            f'<tr class="bad-row"><td data-col="number">{n}</td><td>{e(why)}</td></tr>'
            for n, why in bad
        )
        parts.append(
            f'<h2>Bad rows ({len(bad)})</h2><table id="bad-rows">'
            f"<tr><th>Row</th><th>Why</th></tr>{rows}</table>"
        )
    scores = report.get("scores") or []
    rows = "".join(
        f"<tr><td>{e(s['patient_id'])}</td><td>{tier_badge(s['tier'])}</td>"
        f"<td>{e(fmt_prob(s['probability']))}</td><td>{e(fmt_money(s['value_at_risk']))}</td>"
        f"<td>{e(fmt_time(s['event_time']))}</td></tr>"
        for s in scores
    )
    parts.append(
        f'<h2>Latest score per participant ({len(scores)})</h2><table id="scores">'
        "<tr><th>Participant</th><th>Tier</th><th>Probability</th><th>Value at risk</th>"
        f"<th>Event time</th></tr>{rows}</table>"
    )
    alerts = report.get("alerts") or []
    rows = "".join(
        f"<tr><td>{e(a['patient_id'])}</td><td>{tier_badge(a['tier'])}</td>"
        f"<td>{e(fmt_time(a['event_time']))}</td>"
        f"<td>{e('; '.join(reason_texts(a.get('reasons'))))}</td>"
        f"<td>{e(a.get('recommended_action'))}</td></tr>"
        for a in alerts
    )
    parts.append(
        f'<h2>Alerts ({len(alerts)})</h2><table id="alerts"><tr><th>Participant</th>'
        f"<th>Tier</th><th>Event time</th><th>Reasons</th><th>Action</th></tr>{rows}</table>"
    )
    return "\n".join(parts)
