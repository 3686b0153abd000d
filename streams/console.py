"""What the commands print for people: one console on stderr, progress bars, reports.

Machine-readable output (JSON lines, ``--json``) goes to stdout; everything a
person reads goes through this console.
"""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=True)


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
        f"[green]{what}[/]: sent {report.sent:,} events in {report.seconds:.1f}s "
        f"({report.events_per_s:,.0f}/s); rejected {sum(report.rejected.values()):,}"
    )
    for reason, count in sorted(report.rejected.items()):
        console.print(f"  rejected {count:,} x {reason}")
    for position, reason in report.rejected_examples[:10]:
        console.print(f"  e.g. record {position}: {reason}")
