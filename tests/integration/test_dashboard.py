"""The dashboard in a real browser (Debian's chromium, headless, driven by selenium)
against a real worker, broker and Redis.

What it shows: the portfolio fills; a new alert appears on the site page without a
reload; the drill-down to a participant shows their reasons; acknowledging an
alert (and assigning one) puts an event on alert-actions and changes the queue;
the CSV export equals the queue; an event file is scored through the upload form with its bad rows
numbered. Every wait is an explicit wait on a condition (WebDriverWait), never a
sleep. One screenshot per page is kept under the test's tmp_path; with
TRIALWATCH_DOCS_SCREENSHOT=docs/dashboard.png the site page's is copied there.

A request from beyond loopback is refused: tests/streams/test_access.py checks
that in-process with faked peers (no real remote address is used).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from tests.integration.worker import (
    Namespace,
    Worker,
    publish_events,
    read_topic,
    wait_settled,
)
from trialwatch.models.alerts import AlertPolicy
from trialwatch.models.scorer import Scorer
from trialwatch.producers.backfill import backfill_events
from trialwatch.producers.simulator import SimulationConfig, simulate
from trialwatch.schemas import codec as avro

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WORLD = SimulationConfig(seed=7, n_participants=240, n_trials=1, sites_per_trial=3)
WAIT_S = 120.0

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import (  # noqa: E402
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

FLAKY_DOM = (NoSuchElementException, StaleElementReferenceException)


@pytest.fixture(scope="module")
def world() -> dict:
    """A trial in mid-course: the events up to 35% of its time span before the page
    opens, those up to 50% after (the rest never: a finished trial has nobody at risk)."""
    events = simulate(WORLD).events
    first, last = min(e["event_time"] for e in events), max(e["event_time"] for e in events)
    cut, end = first + int(0.35 * (last - first)), first + int(0.5 * (last - first))
    return {
        "events": [e for e in events if e["event_time"] < end],
        "before": [e for e in events if e["event_time"] < cut],
        "after": [e for e in events if cut <= e["event_time"] < end],
        "cut": cut,
    }


@pytest.fixture(scope="module")
def offline_alerts(world, quick_model_dir) -> list[dict]:
    """The alerts the worker will raise (the backfill equals the stream)."""
    scorer = Scorer.load(quick_model_dir)
    policy = AlertPolicy(cooldown_days=30)
    records = ((i, e, None) for i, e in enumerate(world["events"]))
    return [r.alert for r in backfill_events(records, scorer, policy) if r.alert]


@pytest.fixture(scope="module")
def deployment(kafka_bootstrap, redis_url, quick_model_dir, world):
    # the worker's state lives outside pytest's basetemp (another session prunes it)
    root = Path(tempfile.mkdtemp(prefix="trialwatch-dashboard-"))
    ns = Namespace(kafka_bootstrap, redis_url, quick_model_dir, root)
    worker = Worker(ns).start()
    asyncio.run(publish_events(kafka_bootstrap, ns.settings.visit_events_topic, world["before"]))
    wait_settled(ns, timeout=300)
    try:
        yield ns, worker
    finally:
        worker.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("chromium/chromedriver missing: `make tools` installs them", pytrace=False)
    # Chromium's profile and its sockets need a short path: under a deep TMPDIR
    # (a CI workspace) it fails to start. So its own TMPDIR is a short directory.
    home = Path(tempfile.mkdtemp(prefix="tw-chromium-", dir=_short_tmp_root()))
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1400,1000", "--disable-gpu",
                f"--user-data-dir={home / 'profile'}"):  # fmt: skip
        options.add_argument(arg)
    service = Service(CHROMEDRIVER, env={**os.environ, "TMPDIR": str(home)})
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(home, ignore_errors=True)


def _short_tmp_root() -> str:
    """A short, writable temporary directory, whatever TMPDIR says."""
    for candidate in ("/tmp", "/var/tmp"):
        if os.path.isdir(candidate) and os.access(candidate, os.W_OK):
            return candidate
    return tempfile.gettempdir()


def base_url(worker: Worker) -> str:
    return f"http://127.0.0.1:{worker.port}"


def wait(driver, condition, what: str, timeout: float = WAIT_S):
    waiter = WebDriverWait(driver, timeout, poll_frequency=0.25, ignored_exceptions=FLAKY_DOM)
    try:
        return waiter.until(condition)
    except TimeoutException:
        body = driver.find_element(By.TAG_NAME, "body").text[:1500]
        raise AssertionError(
            f"waited {timeout:.0f}s for: {what}; {driver.current_url} shows:\n{body}"
        ) from None


def shot(driver, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 5_000
    return path


def busiest_site(offline_alerts, cut) -> tuple[str, str]:
    later = Counter((a["trial_id"], a["site_id"]) for a in offline_alerts if a["event_time"] >= cut)
    return later.most_common(1)[0][0]


def test_the_portfolio_fills(deployment, browser, tmp_path):
    _ns, worker = deployment
    browser.get(base_url(worker) + "/dashboard")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "tr.site"), "a site row")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "td.kri[data-flag]"), "KRI flags")
    sites, event_time, wall_time = browser.execute_script(
        """return [Array.from(document.querySelectorAll('tr.site')).map(r => r.dataset.site),
                   document.querySelector('[data-freshness] .event-time').textContent,
                   document.querySelector('[data-freshness] .wall-time').textContent]"""
    )
    assert len(set(sites)) == WORLD.sites_per_trial
    assert event_time.strip()[:2] == "20"  # an event time is shown
    assert wall_time.strip()[:2] == "20"
    assert browser.find_elements(By.CSS_SELECTOR, 'a[href^="/dashboard/sites/"]')
    shot(browser, tmp_path, "portfolio")


# The page swaps its live blocks every 2 s: a read element by element (one WebDriver
# round trip each) can straddle a swap, however loaded the machine. These read the
# DOM in one script, so each answer is one consistent snapshot.
ALERTS_JS = """return Array.from(document.querySelectorAll('li.alert')).map(
    li => [li.dataset.alert, li.textContent])"""
QUEUE_JS = """return Array.from(document.querySelectorAll('tr.queue-row')).map(tr =>
    Object.fromEntries(Array.from(tr.querySelectorAll('td[data-col]')).map(
        td => [td.dataset.col, td.textContent.trim()])))"""


def alerts_shown(driver) -> list[tuple[str, str]]:
    """(alert id, text) of every alert on the page, from one DOM snapshot."""
    return [tuple(pair) for pair in driver.execute_script(ALERTS_JS)]


def alert_ids(driver) -> set[str]:
    return {alert_id for alert_id, _ in alerts_shown(driver)}


def test_a_new_alert_appears_on_the_site_page_without_a_reload(
    deployment, browser, world, offline_alerts, tmp_path
):
    ns, worker = deployment
    trial_id, site_id = busiest_site(offline_alerts, world["cut"])
    later = {
        a["alert_id"]
        for a in offline_alerts
        if a["event_time"] >= world["cut"] and a["site_id"] == site_id
    }
    browser.get(f"{base_url(worker)}/dashboard/sites/{trial_id}/{site_id}")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "tr.queue-row"), "the work-queue")
    assert not alert_ids(browser) & later
    browser.execute_script("window.__sameDocument = 'yes'")
    asyncio.run(publish_events(ns.bootstrap, ns.settings.visit_events_topic, world["after"]))
    wait(browser, lambda d: alert_ids(d) & later, "an alert of the new events on the page")
    assert browser.execute_script("return window.__sameDocument") == "yes"  # no reload
    wait_settled(ns, timeout=300)
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "svg.kri-chart polyline"), "KRIs")
    path = shot(browser, tmp_path, "site")
    docs = os.environ.get("TRIALWATCH_DOCS_SCREENSHOT")
    if docs:
        shutil.copy(path, docs)


def test_the_drill_down_to_a_participant_shows_their_reasons(
    deployment, browser, offline_alerts, world, tmp_path
):
    _ns, worker = deployment
    trial_id, site_id = busiest_site(offline_alerts, world["cut"])
    browser.get(f"{base_url(worker)}/dashboard/sites/{trial_id}/{site_id}")
    href, patient_id = wait(
        browser,
        lambda d: d.execute_script(
            """const a = document.querySelector('tr.queue-row td[data-col=patient_id] a');
               return a && [a.getAttribute('href'), a.textContent.trim()]"""
        ),
        "a participant link",
    )
    assert href == f"/dashboard/patients/{patient_id}"
    browser.get(base_url(worker) + href)  # the link's target (a click could hit a swap)
    wait(browser, lambda d: f"Participant {patient_id}" in d.find_element(By.TAG_NAME, "h1").text,
         "the participant page")  # fmt: skip
    reasons = wait(
        browser,
        lambda d: d.execute_script(
            """return Array.from(document.querySelectorAll(
                   '#reasons ul.raising li, #reasons ul.lowering li')).map(li => li.textContent)"""
        ),
        "reasons",
    )
    assert reasons and all(text.strip() for text in reasons)
    assert browser.find_elements(By.CSS_SELECTOR, "svg.trajectory polyline")
    assert browser.find_elements(By.CSS_SELECTOR, "svg.retention polyline")
    assert browser.find_elements(By.CSS_SELECTOR, "table.timeline tr")
    page = browser.page_source
    assert " km from" not in page and "aged " not in page  # no enrolment attribute
    shot(browser, tmp_path, "participant")


def test_acknowledging_an_alert_records_it_and_changes_the_queue(
    deployment, browser, offline_alerts, world, tmp_path
):
    ns, worker = deployment
    trial_id, site_id = busiest_site(offline_alerts, world["cut"])
    browser.get(f"{base_url(worker)}/dashboard/sites/{trial_id}/{site_id}")

    def an_unacknowledged_alert(d):
        for alert_id, text in alerts_shown(d):
            if "ACKNOWLEDGED" not in text:
                return alert_id
        return None

    alert_id = wait(browser, an_unacknowledged_alert, "an alert not acknowledged yet")
    button = f'li.alert[data-alert="{alert_id}"] button.ack-button'

    def click(d):
        d.find_element(By.CSS_SELECTOR, button).click()
        return True

    wait(browser, click, "the Acknowledge button")
    wait(
        browser,
        lambda d: (
            "ACKNOWLEDGED by loopback"
            in d.find_element(By.CSS_SELECTOR, f'li.alert[data-alert="{alert_id}"]').text
        ),
        "the acknowledgement in the queue",
    )
    records = asyncio.run(read_topic(ns.bootstrap, ns.settings.alert_actions_topic))
    actions = [avro.decode(r.value, "AlertAction") for r in records]
    mine = [a for a in actions if a["alert_id"] == alert_id]
    assert len(mine) == 1
    assert mine[0]["action"] == "ACKNOWLEDGED" and mine[0]["actor"] == "loopback"
    assert mine[0]["trial_id"] == trial_id and mine[0]["site_id"] == site_id


def test_assigning_an_alert_names_the_assignee_in_the_queue(
    deployment, browser, offline_alerts, world
):
    ns, worker = deployment
    trial_id, site_id = busiest_site(offline_alerts, world["cut"])
    browser.get(f"{base_url(worker)}/dashboard/sites/{trial_id}/{site_id}")

    def an_unassigned_alert(d):
        for alert_id, text in alerts_shown(d):
            if "ASSIGNED" not in text:
                return alert_id
        return None

    alert_id = wait(browser, an_unassigned_alert, "an alert not assigned yet")
    form = f'li.alert[data-alert="{alert_id}"] form.assign'

    def assign(d):  # typing pauses the polling (the input has the focus)
        field = d.find_element(By.CSS_SELECTOR, f"{form} input[name=assignee]")
        field.clear()
        field.send_keys("coordinator-7")
        d.find_element(By.CSS_SELECTOR, f"{form} button.assign-button").click()
        return True

    wait(browser, assign, "the Assign form")
    wait(
        browser,
        lambda d: (
            "ASSIGNED to coordinator-7 by loopback"
            in d.find_element(By.CSS_SELECTOR, f'li.alert[data-alert="{alert_id}"]').text
        ),
        "the assignment in the queue",
    )
    records = asyncio.run(read_topic(ns.bootstrap, ns.settings.alert_actions_topic))
    actions = [avro.decode(r.value, "AlertAction") for r in records]
    mine = [a for a in actions if a["alert_id"] == alert_id and a["action"] == "ASSIGNED"]
    assert [(a["assignee"], a["actor"]) for a in mine] == [("coordinator-7", "loopback")]


TABLE_COLUMNS = (
    "rank", "patient_id", "probability", "value_at_risk", "clv", "last_event",
    "last_event_time", "recommended_action", "alerts", "paged",
)  # fmt: skip


def test_the_csv_export_equals_the_queue(deployment, browser, offline_alerts, world):
    _ns, worker = deployment
    trial_id, site_id = busiest_site(offline_alerts, world["cut"])
    page = f"{base_url(worker)}/dashboard/sites/{trial_id}/{site_id}"
    browser.get(page)
    href = browser.find_element(By.ID, "csv").get_attribute("href")
    assert href == f"{page}/queue.csv"

    def table(d) -> list[dict]:
        # the DOM's text, not the rendered one (a wrapped cell is one line)
        cells = d.execute_script(QUEUE_JS)
        return [{c: row[c] for c in TABLE_COLUMNS} | {"tier": row["tier"]} for row in cells]

    def exported() -> list[dict]:
        with urllib.request.urlopen(href, timeout=10) as response:
            assert response.headers["Content-Type"].startswith("text/csv")
            text = response.read().decode("utf-8")
        return list(csv.DictReader(io.StringIO(text)))

    last: list = []

    def equal(d):
        shown, rows = table(d), exported()
        csv_rows = [{c: r[c] for c in (*TABLE_COLUMNS, "tier")} for r in rows]
        last[:] = [shown, csv_rows]
        return bool(shown) and shown == csv_rows

    try:
        wait(browser, equal, "the CSV rows equal the queue's rows", timeout=60)
    except AssertionError:
        if not last:
            raise
        shown, csv_rows = last
        differ = [(a, b) for a, b in zip(shown, csv_rows, strict=False) if a != b][:2]
        raise AssertionError(
            f"{len(shown)} rows shown, {len(csv_rows)} exported: {differ}"
        ) from None


def test_the_model_page_and_an_uploaded_file(deployment, browser, world, tmp_path):
    _ns, worker = deployment
    browser.get(base_url(worker) + "/dashboard/model")
    wait(browser, lambda d: d.find_element(By.ID, "model-version").text, "the model card")
    assert browser.find_elements(By.CSS_SELECTOR, "#card table")
    shot(browser, tmp_path, "model")

    upload = tmp_path / "week.jsonl"
    lines = [json.dumps(e) for e in world["events"][:300]]
    lines.insert(2, "{this is not json")  # line 3
    upload.write_text("\n".join(lines) + "\n")
    browser.get(base_url(worker) + "/dashboard/upload")
    browser.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(upload))
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    summary = wait(browser, lambda d: d.find_element(By.ID, "upload-summary"), "the scores")
    assert summary.text.startswith("301 records")
    numbers = [
        td.text for td in browser.find_elements(By.CSS_SELECTOR, "#bad-rows td[data-col=number]")
    ]
    assert numbers == ["3"]
    assert browser.find_elements(By.CSS_SELECTOR, "#scores tr")
    shot(browser, tmp_path, "upload")


def test_the_worker_serves_htmx_and_refuses_a_cross_site_post(deployment):
    _, worker = deployment
    with urllib.request.urlopen(base_url(worker) + "/dashboard/static/htmx.min.js") as response:
        assert len(response.read()) > 40_000
    request = urllib.request.Request(
        base_url(worker) + "/dashboard/alerts/any/ack",
        data=b"patient_id=P0000001",
        headers={"Origin": "http://elsewhere.invalid"},  # a reserved name: never resolved
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403
