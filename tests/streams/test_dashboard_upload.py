"""The dashboard's upload: an event file scored through the backfill path, bad rows
reported by number, and a bounded size with a clear message."""

from __future__ import annotations

import json

import pytest
from aiohttp.test_utils import make_mocked_request

from trialwatch.models.alerts import AlertPolicy
from trialwatch.models.scorer import Scorer
from trialwatch.producers.simulator import SimulationConfig, simulate
from trialwatch.streams import dashboard


@pytest.fixture(scope="module")
def events() -> list[dict]:
    return simulate(SimulationConfig(seed=5, n_participants=12, n_trials=1)).events


def test_an_uploaded_file_is_scored_and_bad_rows_are_numbered(events, quick_model_dir):
    lines = [json.dumps(e) for e in events[:60]]
    lines.insert(3, "{not json")  # line 4
    lines.insert(9, json.dumps({"event_type": "NOPE"}))  # line 10
    data = ("\n".join(lines) + "\n").encode()
    report = dashboard.score_file(
        "week.jsonl", data, Scorer.load(quick_model_dir), AlertPolicy(cooldown_days=30)
    )
    assert report["records"] == 62
    assert [n for n, _ in report["bad"]] == [4, 10]
    assert report["bad"][0][1].startswith("malformed_json")
    assert report["outcomes"]["dead_lettered"] == 2
    assert report["scores"] and all(0 <= s["probability"] <= 1 for s in report["scores"])


def test_an_unknown_file_type_is_refused_clearly(quick_model_dir):
    report = dashboard.score_file("x.exe", b"", None, None)
    assert "unknown file type .exe" in report["error"]


async def test_an_upload_over_the_limit_is_refused_before_it_is_read():
    request = make_mocked_request(
        "POST", "/dashboard/upload",
        headers={"Content-Length": str(dashboard.MAX_UPLOAD_BYTES * 2),
                 "Content-Type": "multipart/form-data; boundary=x"},
    )  # fmt: skip
    with pytest.raises(dashboard.UploadTooLarge, match="larger than the upload limit"):
        await dashboard.read_upload(request)


def test_a_csv_upload_scores_like_its_json_lines(events, quick_model_dir):
    """The seeds' batch CSV upload: a spreadsheet of the same contract."""
    import csv
    import io

    columns = sorted({k for e in events for k, v in e.items() if v is not None})
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for e in events[:40]:
        writer.writerow({c: "" if e.get(c) is None else e[c] for c in columns})
    rows = out.getvalue().splitlines()
    rows.insert(5, "," * (len(columns) - 1))  # an empty row: row 6 of the sheet
    scorer, policy = Scorer.load(quick_model_dir), AlertPolicy(cooldown_days=30)
    from_csv = dashboard.score_file("week.csv", ("\n".join(rows) + "\n").encode(), scorer, policy)
    jsonl = "\n".join(json.dumps(e) for e in events[:40]) + "\n"
    from_json = dashboard.score_file("week.jsonl", jsonl.encode(), scorer, policy)
    assert [n for n, _ in from_csv["bad"]] == [6]
    assert from_csv["scores"] == from_json["scores"] and from_csv["scores"]
    assert from_csv["alerts"] == from_json["alerts"]
