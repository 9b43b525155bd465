"""Progress of a batch on stderr: a rich bar on a terminal (`progress_bar`), plain lines otherwise.

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


def progress_for(job: str, total: int, stream: TextIO | None = None) -> Reporter:
    """The bar on a terminal, plain lines anywhere else."""
    out = stream or sys.stderr
    if out.isatty():
        from producer.batch.progress_bar import RichReporter  # rich, for terminals only

        return RichReporter(job, total, out)
    return Reporter(job, total, out)
