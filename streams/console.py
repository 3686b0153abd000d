"""What the commands print for people: one console on stderr, progress bars, reports.

Machine-readable output (JSON lines, ``--json``) goes to stdout; everything a
person reads goes through a console made by ``make_console``.
"""

from __future__ import annotations

import sys

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

# A pipe has no width; this only bounds what a table or panel may grow to there.
PIPE_WIDTH = 1000


def make_console(*, stderr: bool = False) -> Console:
    """A console that wraps to a terminal's width but never wraps a pipe or a file.

    Rich gives output that is not a terminal 80 columns (or ``$COLUMNS``) and
    wraps report lines there, so ``trialwatch replay ... 2> log`` would break a
    line in the middle of a path. Off a terminal, lines are printed whole (rich's
    ``soft_wrap``: no wrapping, no cropping) and tables keep their natural width.
    """
    console = Console(stderr=stderr)
    if console.is_terminal:
        return console
    return Console(stderr=stderr, soft_wrap=True, width=PIPE_WIDTH)


console = make_console(stderr=True)


def progress_bar() -> Progress:
    """A progress bar on the console, silent when stderr is not a terminal."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal and not sys.stderr.isatty(),
    )


def print_publish_report(report, what: str) -> None:
    """The summary of a publish run: sent, rate, and rejected records by reason."""
    console.print(
        f"[green]{escape(what)}[/]: sent {report.sent:,} events in {report.seconds:.1f}s "
        f"({report.events_per_s:,.0f}/s); rejected {sum(report.rejected.values()):,}"
    )
    for reason, count in sorted(report.rejected.items()):
        console.print(f"  rejected {count:,} x {escape(reason)}")
    for position, reason in report.rejected_examples[:10]:
        console.print(f"  e.g. record {position}: {escape(reason)}")
