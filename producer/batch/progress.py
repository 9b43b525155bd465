"""Progress of a batch on stderr: a rich bar on a terminal, plain lines otherwise.

    with progress_for(job_id, total_lines) as progress:
        progress.update(rows_done)

The bar shows rows done, rows/s and the ETA; the plain form (logs, CI, pipes) prints one
line every few seconds and a last one at the end. Rows done may stop short of the line
count when quoted fields hold line breaks; the bar completes at the end either way.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
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


class Reporter:
    """The plain reporter: a line every `every` seconds (none without a stream)."""

    def __init__(self, job: str, total: int, stream: TextIO | None, every: float = 2.0) -> None:
        self.job = job
        self.total = total
        self.stream = stream
        self.every = every
        self.started = time.monotonic()
        self.rows = 0
        self._last = self.started

    def __enter__(self) -> Reporter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close(finished=kind is None)

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.rows / elapsed if elapsed > 0 else 0.0

    def update(self, rows: int) -> None:
        self.rows = rows
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            self._line()

    def close(self, finished: bool) -> None:
        if finished:
            self._line()

    def _line(self) -> None:
        if self.stream is None:
            return
        rate = self.rate()
        # A file with a header and no rows has a total of 0: no share of it to show.
        share = (
            f" of {self.total} ({min(100.0, 100 * self.rows / self.total):.0f}%)"
            if self.total
            else ""
        )
        remaining = max(self.total - self.rows, 0) / rate if rate else 0.0
        line = (
            f"zipscore: job {self.job}: {self.rows} rows"
            + share
            + f", {rate:,.0f} rows/s, ETA {remaining:.0f} s"
        )
        print(line, file=self.stream, flush=True)


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


def progress_for(job: str, total: int, stream: TextIO | None = None) -> Reporter:
    """The bar on a terminal, plain lines anywhere else."""
    out = stream or sys.stderr
    if out.isatty():
        return RichReporter(job, total, out)
    return Reporter(job, total, out)
