"""One run of one batch job: keeps the window of chunks in flight full, writes in order.

A chunk that has not completed within `batch_chunk_deadline_seconds`, or whose task failed,
is sent again; one that runs far past the median chunk time gets a backup copy first (see
producer/batch/backups.py). Outputs are written strictly in chunk order, each one once.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from producer import metrics
from producer.batch import backups
from producer.batch.cutting import MB, RowTooLong, iter_chunks, read_chunk
from producer.batch.digest import BackgroundDigest
from producer.batch.errors import JobFailed, input_changed
from producer.batch.lease import LeaseKeeper
from producer.batch.output import publish
from producer.batch.prescan import InputLayout
from producer.batch.progress import Reporter
from worker.contract.errors import ErrorCode, ZipscoreError

if TYPE_CHECKING:
    from producer.batch.runner import BatchRunner

FAILED_STATES = frozenset({"FAILURE", "REVOKED"})
STATE_CHECK_AFTER = 1.0  # seconds a chunk may run before its task state is looked at


@dataclass
class _Flight:
    """A chunk sent and not yet written."""

    start: int
    end: int
    task: Any  # the AsyncResult of the latest send; None for an output found in Redis
    sent_at: float
    attempts: int = 1
    checked_at: float = 0.0
    backups: int = 0  # backup copies sent for this attempt
    backup_at: float = 0.0  # when the latest was sent


class JobLoop:
    """One run of one job: keeps the window of chunks in flight full, writes in order."""

    def __init__(
        self,
        runner: BatchRunner,
        job: str,
        record: dict[str, str],
        *,
        source: BinaryIO,
        layout: InputLayout,
        sink: BinaryIO,
        reporter: Reporter,
        keeper: LeaseKeeper,
    ) -> None:
        self.runner = runner
        self.layout = layout
        self.record = record
        self.keeper = keeper
        self.store = runner.store
        self.settings = runner.settings
        self.job = job
        self.source = source
        self.sink = sink
        self.reporter = reporter
        self.message = {
            "job": job,
            "version": int(record["version"]),
            "column": int(record["column"]),
            "columns": int(record["columns"]),
            "newline": record["newline"],
        }
        self.next_write = int(record["chunks_done"])
        self.input_offset = int(record["input_offset"])
        self.output_offset = int(record["output_offset"])
        self.counts = {k: int(record[k]) for k in ("rows", "ok", "unknown", "invalid")}
        self.resubmitted = int(record.get("resubmitted", 0))
        self.seconds_before = float(record["seconds"])
        self.started = time.monotonic()
        self.lines = int(record["chunk_size"])
        # Recorded at the start: a resume cuts the same chunks whatever the settings are now.
        self.max_bytes = int(record.get("chunk_bytes") or self.settings.batch_max_chunk_mb * MB)
        self.cut_digest = BackgroundDigest()  # of the bytes cut, compared with the check's
        self.cut_end = self.input_offset
        # Chunks a killed producer had in flight may be scored already: look before sending.
        self.reuse_below = self.next_write + self.settings.batch_in_flight
        self.in_flight: dict[int, _Flight] = {}
        self.pace = backups.ChunkPace()  # recent chunk times: when a backup copy is due

    def run(self) -> None:
        with self.cut_digest:
            self._run()

    def _run(self) -> None:
        chunks = iter_chunks(
            self.source,
            self.input_offset,
            self.next_write,
            lines=self.lines,
            max_bytes=self.max_bytes,
            end=self.layout.size,
        )
        exhausted = False
        self.reporter.update(self.counts["rows"])
        while True:
            while not exhausted and len(self.in_flight) < self.settings.batch_in_flight:
                try:
                    chunk = next(chunks, None)
                except RowTooLong:  # the check found no such row: the file has changed
                    raise input_changed(self.record["input"]) from None
                if chunk is None:
                    exhausted = True
                    self._check_input_unchanged()
                    break
                self.cut_digest.update(chunk.data)
                self.cut_end = chunk.end
                if chunk.index < self.reuse_below and self.store.has_chunk(self.job, chunk.index):
                    self.in_flight[chunk.index] = _Flight(chunk.start, chunk.end, None, 0.0)
                else:
                    task = self._send(chunk.index, chunk.data)
                    flight = _Flight(chunk.start, chunk.end, task, time.monotonic())
                    self.in_flight[chunk.index] = flight
            if not self.in_flight:
                break
            if not self._write_ready():
                for index in self.store.wait_for_notice(self.job, self.settings.batch_poll_seconds):
                    done = self.in_flight.get(index)
                    if done is not None and done.task is not None:
                        if not done.backups:
                            self.pace.completed(time.monotonic() - done.sent_at)
                        done.task = None  # its output is in Redis
                self._resubmit_overdue()
            self.keeper.check()
        self._finish()

    def _send(self, index: int, data: bytes) -> Any:
        message = {**self.message, "chunk": index}
        try:
            self.store.put_input(self.job, index, data)
            result = self.runner.client.app.send_task("batch.score_chunk", args=[message])
        except Exception as exc:
            raise ZipscoreError(
                ErrorCode.BACKEND_UNAVAILABLE, f"the queue is unreachable ({type(exc).__name__})"
            ) from None
        return result

    def _write_ready(self) -> bool:
        """Write every chunk whose turn it is and whose output is in; True if any was."""
        wrote = False
        while (flight := self.in_flight.get(self.next_write)) is not None:
            if flight.task is not None:  # not announced yet (nor found done by a check)
                return wrote
            stored = self.store.get_chunk(self.job, self.next_write)
            if stored is None:  # announced or reused, and expired meanwhile: score it again
                self._resend(self.next_write, flight)
                return wrote
            self.keeper.check()  # never write the output after losing the lease
            self._write(stored.data)
            self.output_offset += len(stored.data)
            self.input_offset = flight.end
            self.counts["rows"] += stored.rows
            self.counts["ok"] += stored.ok
            self.counts["unknown"] += stored.unknown
            self.counts["invalid"] += stored.invalid
            del self.in_flight[self.next_write]
            self.next_write += 1
            self._update(self._progress(), written_chunk=self.next_write - 1)
            self.reporter.update(self.counts["rows"])
            wrote = True
        return wrote

    def _write(self, data: bytes | memoryview) -> None:
        try:
            self.sink.write(data)
            self.sink.flush()
        except OSError as exc:
            raise ZipscoreError(
                ErrorCode.BACKEND_UNAVAILABLE,
                f"cannot write the output {self.sink.name} ({exc.strerror or type(exc).__name__})",
            ) from None

    def _check_input_unchanged(self) -> None:
        """Every byte checked was cut, nothing else, and the open file is still that file."""
        layout = self.layout
        fd = self.source.fileno()
        if (
            self.cut_end != layout.size
            or self.cut_digest.hexdigest() != layout.cut_digest
            or layout.changed(os.fstat(fd))
            or os.pread(fd, 1, layout.size)
        ):
            raise input_changed(self.record["input"])

    def _check_rows(self) -> None:
        """The rows written are the rows checked: without quotes one a line; with quotes
        (a quoted field may join lines into a row) no more than the lines."""
        rows, lines = self.counts["rows"], int(self.record["lines_total"])
        if rows > lines or (not self.layout.quotes and rows != lines):
            raise JobFailed(
                ErrorCode.BACKEND_UNAVAILABLE,
                f"job {self.job} wrote {rows} rows of the {lines} lines checked: its output "
                "is not published; score the file again",
            )

    def _progress(self) -> dict[str, Any]:
        return {
            "chunks_done": self.next_write,
            "input_offset": self.input_offset,
            "output_offset": self.output_offset,
            "resubmitted": self.resubmitted,
            "seconds": round(self.seconds_before + time.monotonic() - self.started, 3),
            **self.counts,
        }

    def _resubmit_overdue(self) -> None:
        now = time.monotonic()
        deadline = self.settings.batch_chunk_deadline_seconds
        for index, flight in list(self.in_flight.items()):
            if flight.task is None:
                continue
            age = now - flight.sent_at
            if age > deadline:
                if self.store.has_chunk(self.job, index):  # done, its notice was missed
                    flight.task = None
                else:
                    self._resend(index, flight)
            elif backups.due(
                flight.backups, now - max(flight.sent_at, flight.backup_at), self.pace
            ):
                self._send_backup(index, flight)
            elif age > STATE_CHECK_AFTER and now - flight.checked_at > STATE_CHECK_AFTER:
                flight.checked_at = now
                self._check_task(index, flight)

    def _check_task(self, index: int, flight: _Flight) -> None:
        result = flight.task
        state = result.state
        if state in FAILED_STATES:
            self._resend(index, flight)
        elif state == "SUCCESS":
            answer = result.result
            if isinstance(answer, dict) and "error" in answer:
                raise ZipscoreError.from_json(answer)
            if self.store.has_chunk(self.job, index):
                if not flight.backups:
                    self.pace.completed(time.monotonic() - flight.sent_at)
                flight.task = None  # done, and its notice was missed: write it
            elif index >= self.next_write:
                self._resend(index, flight)

    def _send_backup(self, index: int, flight: _Flight) -> None:
        """A copy of a chunk far slower than its peers (see producer/batch/backups.py); the
        first copy to finish wins. Not an attempt: the deadline still counts from the send."""
        if self.layout.changed(os.fstat(self.source.fileno())):
            raise input_changed(self.record["input"])
        flight.task = self._send(index, read_chunk(self.source, flight.start, flight.end))
        flight.backups += 1
        flight.backup_at = time.monotonic()
        self.resubmitted += 1

    def _resend(self, index: int, flight: _Flight) -> None:
        if flight.task is not None:
            flight.attempts += 1
            self.resubmitted += 1
            metrics.chunk_resent()
        if flight.attempts > self.settings.batch_max_attempts:
            raise ZipscoreError(
                ErrorCode.BACKEND_UNAVAILABLE,
                f"chunk {index} of job {self.job} failed {flight.attempts - 1} times; "
                f"once workers are healthy: zipscore score --resume {self.job}",
            )
        if self.layout.changed(os.fstat(self.source.fileno())):
            raise input_changed(self.record["input"])
        data = read_chunk(self.source, flight.start, flight.end)
        flight.task = self._send(index, data)
        flight.sent_at = time.monotonic()
        flight.checked_at = 0.0
        flight.backups, flight.backup_at = 0, 0.0

    def _update(self, fields: dict[str, Any], *, written_chunk: int | None = None) -> None:
        """Write the job's state if the lease is still held; else stop (TIMEOUT)."""
        self.keeper.update(fields, written_chunk=written_chunk)

    def _finish(self) -> None:
        """Check the input once more, then put the output in place, then record `done`."""
        self._check_input_unchanged()
        self._check_rows()
        self.keeper.check()
        publish(self.sink, self.record)
        fields = {**self._progress(), "state": "done", "chunks_total": self.next_write}
        self._update(fields)
        self.store.drop_notices(self.job)
