"""The live progress bar of a batch on a terminal (rich); `producer.batch.progress` picks it.

Apart from the plain reporter so that rich is imported only where a terminal shows it.
"""

from __future__ import annotations

from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from producer.batch.progress import Reporter


class RichReporter(Reporter):
    """A live bar: rows done of the file's lines, rows/s and the remaining time.

    It fits an 80-column terminal for files up to 99,999,999 rows: the job shows by its first
    8 characters (the whole id is printed when the job starts), and the bar takes what the
    numbers leave.
    """

    def __init__(
        self, job: str, total: int, stream: TextIO, console: Console | None = None
    ) -> None:
        super().__init__(job, total, stream)
        self.stream = stream
        self._bar = Progress(
            TextColumn(f"job {job[:8]}"),
            BarColumn(bar_width=None),
            TaskProgressColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} rows/s"),
            TimeRemainingColumn(compact=True, elapsed_when_finished=True),
            console=console or Console(file=stream),
            transient=False,
            expand=False,
        )
        self._task = self._bar.add_task("score", total=total or None, rate=compact(0.0))
        self._bar.console.print(f"zipscore: job {job}")
        self._bar.start()

    def update(self, rows: int) -> None:
        self.rows = rows
        self._bar.update(self._task, completed=rows, rate=compact(self.rate()))

    def close(self, finished: bool) -> None:
        if finished:
            self._bar.update(
                self._task, total=self.rows, completed=self.rows, rate=compact(self.rate())
            )
        self._bar.stop()


def compact(rate: float) -> str:
    """A rate in at most 6 characters: 950, 12.3k, 4.56M, 1234M."""
    if rate < 1_000:
        return f"{rate:.0f}"
    if rate < 100_000:
        return f"{rate / 1_000:.1f}k"
    if rate < 1_000_000:
        return f"{rate / 1_000:.0f}k"
    return f"{rate / 1_000_000:.2f}M" if rate < 100_000_000 else f"{rate / 1_000_000:.0f}M"
