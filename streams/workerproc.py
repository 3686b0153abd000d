"""A worker as a child process: start it, wait until it answers, ask it, stop it.

The demo runs one; the benchmarks and the integration tests run many. They all
use this one implementation (free port, log file, health polling with the log's
tail on failure, SIGTERM then SIGKILL, RSS and CPU time from /proc).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

WORKER_COMMAND = (sys.executable, "-m", "trialwatch.streams", "worker")


class WorkerProcessError(RuntimeError):
    """The worker exited, or did not get ready in time; the message holds its log's tail."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (Linux /proc), NaN when it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (Linux /proc), NaN when unreadable.

    A benchmark on a shared machine reads this beside wall time: it does not grow
    while the process waits for a CPU another one holds.
    """
    try:
        # the fields after the command (which may hold spaces) start at state
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        ticks = int(fields[11]) + int(fields[12])  # utime, stime
    except (OSError, IndexError, ValueError):
        return float("nan")
    return ticks / os.sysconf("SC_CLK_TCK")


def http_json(
    url: str, body: object | None = None, timeout: float = 5.0
) -> tuple[int, dict[str, Any]]:
    """GET (or POST ``body`` as JSON) and return (status, decoded body); HTTP errors too."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


class WorkerProcess:
    """One worker subprocess with its environment, web port and log file.

    ``command`` defaults to ``trialwatch worker``; a benchmark passes another
    Faust app's command. The environment must make the app listen on ``port``.
    """

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        *,
        port: int,
        command: tuple[str, ...] | list[str] = WORKER_COMMAND,
        loglevel: str = "warn",
    ) -> None:
        self.env = env
        self.log_path = log_path
        self.port = port
        self.command = [*command, "-l", loglevel]
        self.proc: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "the worker was never started"
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> WorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.command,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, dict[str, Any]]:
        return http_json(self.url + path, timeout=timeout)

    def post(self, path: str, body: object, timeout: float = 10.0) -> tuple[int, dict[str, Any]]:
        return http_json(self.url + path, body, timeout=timeout)

    def wait_for(
        self,
        ready: Callable[[dict[str, Any]], bool],
        *,
        path: str = "/health",
        timeout: float = 120.0,
        what: str = "healthy",
        interval: float = 0.25,
    ) -> dict[str, Any]:
        """Poll ``path`` until ``ready(body)``; the body that was ready.

        Raises ``WorkerProcessError`` (with the log's tail) when the process
        exits first or ``timeout`` seconds pass.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                code = self.proc.returncode if self.proc else None
                raise WorkerProcessError(
                    f"the worker exited (code {code}) before it was {what}; "
                    f"{self.log_path}:\n{self.log_tail()}"
                )
            try:
                status, body = self.get(path, timeout=3.0)
            except (OSError, ValueError):
                status, body = 0, {}
            if status == 200 and ready(body):
                return body
            time.sleep(interval)
        raise WorkerProcessError(
            f"the worker was not {what} within {timeout:.0f}s; {self.log_path}:\n{self.log_tail()}"
        )

    def wait_healthy(self, timeout: float = 120.0) -> dict[str, Any]:
        return self.wait_for(lambda body: True, timeout=timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int | None:
        """Signal the worker and wait (SIGKILL after ``timeout``); its exit code."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.proc.returncode if self.proc is not None else None

    def kill(self) -> int | None:
        return self.stop(signal.SIGKILL)

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop(timeout=30.0)
