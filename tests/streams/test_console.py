"""Report lines are never wrapped or cut when the output is a pipe or a file.

The report runs in a child process whose stderr is a real pipe, with
``COLUMNS=40`` set explicitly: what rich would wrap at 40 columns must come out
as one line, whatever the terminal of whoever runs the tests.
"""

from __future__ import annotations

import os
import subprocess
import sys

from rich.table import Table

from trialwatch.streams.console import make_console

# rich treats output as a terminal when any of these says so
TERMINAL_OVERRIDES = ("FORCE_COLOR", "FORCE_TERMINAL", "TTY_COMPATIBLE", "TTY_INTERACTIVE")

REPORT = """
import sys
from trialwatch.producers.publisher import PublishReport
from trialwatch.streams.console import print_publish_report

report = PublishReport(sent=492, seconds=2.0)
report.reject(10, "malformed_json: " + " ".join(["Expecting a property name"] * 6))
print_publish_report(report, "replay " + sys.argv[1])
"""


def piped_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in TERMINAL_OVERRIDES}
    return {**env, **extra}


def test_a_publish_report_on_a_pipe_is_one_line_per_item_however_long_the_path():
    path = "/data/" + "a-rather-long-directory-name/" * 12 + "history.jsonl"
    done = subprocess.run(
        [sys.executable, "-c", REPORT, path],
        env=piped_env(COLUMNS="40"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == f"replay {path}: sent 492 events in 2.0s (246/s); rejected 1"
    assert lines[1] == "  rejected 1 x malformed_json"
    assert lines[2] == "  e.g. record 10: malformed_json: " + " ".join(
        ["Expecting a property name"] * 6
    )
    assert len(lines) == 3


def test_a_table_on_a_pipe_keeps_its_natural_width(monkeypatch, capsys):
    for name in TERMINAL_OVERRIDES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "40")
    table = Table("measure", "note")
    note = "a note that is much longer than forty columns, kept on one line"
    table.add_row("label base rate (60-day withdrawal)", note)
    make_console().print(table)
    out = capsys.readouterr().out
    assert any(
        note in line and "label base rate (60-day withdrawal)" in line for line in out.splitlines()
    )
