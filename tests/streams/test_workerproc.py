"""The worker-subprocess helper the demo, the benchmarks and the tests share.

Driven with real child processes: a tiny HTTP server that answers /health with
a growing counter, and a process that exits at once.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from trialwatch.streams.workerproc import WorkerProcess, WorkerProcessError, free_port

SERVER = """
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
calls = {"n": 0}
class Health(BaseHTTPRequestHandler):
    def do_GET(self):
        calls["n"] += 1
        body = json.dumps({"path": self.path, "n": calls["n"]}).encode()
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
print("serving", flush=True)
HTTPServer(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
"""


def _server(tmp_path: Path) -> WorkerProcess:
    port = free_port()
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    command = (sys.executable, str(script), str(port))
    worker = WorkerProcess(dict(os.environ), tmp_path / "server.log", port=port, command=command)
    # The helper appends "-l <level>" as Faust expects; this script ignores extra args.
    return worker


def test_waits_until_the_body_is_ready_then_stops_with_sigterm(tmp_path: Path) -> None:
    worker = _server(tmp_path).start()
    try:
        body = worker.wait_for(lambda b: b["n"] >= 3, timeout=30, interval=0.05)
        assert body["n"] >= 3 and body["path"] == "/health"
        assert worker.get("/nowhere")[0] == 404
        assert worker.running
    finally:
        code = worker.stop(timeout=10)
    assert code == -signal.SIGTERM
    assert not worker.running
    assert "serving" in worker.log()


def test_a_worker_that_exits_names_its_code_and_log(tmp_path: Path) -> None:
    command = (sys.executable, "-c", "import sys; print('no model here'); sys.exit(3)")
    worker = WorkerProcess(dict(os.environ), tmp_path / "w.log", port=free_port(), command=command)
    with pytest.raises(WorkerProcessError) as info:
        worker.start().wait_healthy(timeout=30)
    assert "code 3" in str(info.value)
    assert "no model here" in str(info.value)


def test_a_worker_that_never_gets_ready_times_out_and_is_killed(tmp_path: Path) -> None:
    worker = _server(tmp_path).start()
    with pytest.raises(WorkerProcessError, match="not done within 1s"):
        worker.wait_for(lambda b: False, timeout=1, what="done", interval=0.05)
    assert worker.kill() == -signal.SIGKILL
