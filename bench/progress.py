"""Progress lines for the benchmark's long stages, so a person sees they are alive.

One plain line on stderr every few seconds, e.g.

    (d) full pipeline run 2/3: 120,000 / 200,000 events, 1,850/s

Whole lines only, never a carriage-return redraw: a pipe or a log file reads
them as well as a terminal does, and each fits in 80 columns (a long label is
shortened, the numbers never are). The rate is over the interval since the
previous line, so a stall shows as a falling rate, not a slowly sinking mean.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

WIDTH = 80


def _count(n: float) -> str:
    return f"{n:,.0f}"


def progress_line(label: str, done: int, total: int | None, rate: float | None,
                  unit: str = "events", tail: str = "") -> str:  # fmt: skip
    """``label: done / total unit, rate/s`` (then ``tail``) within ``WIDTH`` columns."""
    amount = f"{_count(done)} / {_count(total)} {unit}" if total else f"{_count(done)} {unit}"
    if rate is not None:
        amount += f", {_count(rate)}/s"
    amount += tail
    room = WIDTH - len(amount) - 2  # ": "
    if len(label) > room:
        label = label[: max(room - 3, 0)] + "..."
    return f"{label}: {amount}"[:WIDTH]


class Progress:
    """Throttled progress lines for one stage: call ``update(done)`` as often as
    you like; it writes a line when ``every_s`` seconds have passed since the
    last one (the first after ``every_s`` from the start), and ``finish`` writes
    the closing line with the stage's mean rate."""

    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        unit: str = "events",
        every_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        write: Callable[[str], None] | None = None,
    ) -> None:
        self.label, self.total, self.unit, self.every_s = label, total, unit, every_s
        self.clock = clock
        self.write = write or _stderr_line
        self.start = self.last_at = clock()
        self.last_done = 0
        self.lines = 0

    def update(self, done: int) -> str | None:
        """The line written, or None when it is not yet time for one."""
        now = self.clock()
        if now - self.last_at < self.every_s:
            return None
        interval = now - self.last_at
        rate = (done - self.last_done) / interval if interval > 0 else None
        self.last_at, self.last_done = now, done
        return self._emit(progress_line(self.label, done, self.total, rate, self.unit))

    def finish(self, done: int) -> str:
        """The closing line: the stage's mean rate and its duration."""
        elapsed = self.clock() - self.start
        rate = done / elapsed if elapsed > 0 else None
        tail = f" in {elapsed:,.0f}s"
        return self._emit(progress_line(self.label, done, self.total, rate, self.unit, tail))

    def _emit(self, line: str) -> str:
        self.lines += 1
        self.write(line)
        return line


def _stderr_line(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
