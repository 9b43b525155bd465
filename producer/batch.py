"""The producer's side of a batch: send chunks, write their outputs in order, record progress.

    runner = BatchRunner(client, batch_store_from_settings())
    summary = runner.start(Path("in.csv"), Path("out.csv"), zipcode_column="zipcode")
    summary = runner.resume("3f2a...")          # after the producer was killed
    status = runner.status("3f2a...")

How the guarantees are kept:

- Bounded memory: at most `batch_in_flight` chunks are sent and not yet written; the
  producer holds one chunk's bytes at a time (outputs wait in Redis until it is their turn).
- Order: chunk i's output is written only after chunks 0..i-1, whatever order they finish in.
- Exactly once: a chunk's output key is idempotent, and the producer writes each chunk
  index once. A chunk that has not completed within `batch_chunk_deadline_seconds`, or whose
  task failed (e.g. WorkerLostError after a SIGKILL), is sent again; a duplicate run writes
  the same value under the same key, and a late one for a written chunk is skipped.
- One producer per job: a lease taken with SET NX, renewed from a thread for the whole run
  and checked-and-set atomically (WATCH/MULTI on the holder's token); every write of the
  job's state checks the lease in the same transaction, so a producer that lost it stops.
- Resume: after each chunk is written (and flushed) the job hash records chunks done and the
  input and output byte offsets. A resumed run truncates the job's partial output to the
  recorded offset and cuts chunks again from the recorded input offset (chunking is
  deterministic), reusing outputs already in Redis, so finished chunks are never scored again.
- Exactly the bytes checked: the input is opened once and that open file is both checked and
  cut (a file renamed over the path later is never read). The check digests the bytes it
  read; the job digests the bytes it cuts, reads no further than the checked size, and
  compares digest, size, modification time and inode before it finishes: any difference
  fails the job with BAD_INPUT_FILE ("input changed while scoring"), never a `done`.
- Output tied to its job: rows go to a partial file beside the target (same directory, so
  the same filesystem), which is fsynced and renamed over the target only once every chunk
  is written. A target that is the input (same inode) or not a regular file is refused, and
  so is a target that another running job is writing (a Redis lock keyed by its real path,
  held and renewed with the job's lease: it works across hosts, as the lease does, and a
  killed producer's lock expires with its lease).
- One table version per job: the job pins the table version it starts with
  (`batch.pin_table`) and every chunk is scored with that version's copy.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import math
import os
import socket
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from pydantic import BaseModel

from producer import metrics
from producer.csv_chunks import (
    BOM,
    MB,
    InputLayout,
    RowTooLong,
    inspect_handle,
    iter_chunks,
    open_input,
    read_chunk,
)
from producer.progress import Reporter
from worker import batch_store
from worker.batch import output_header
from worker.batch_store import BatchStore, is_job_id
from worker.errors import ErrorCode, ZipscoreError
from worker.settings import Settings

logger = logging.getLogger(__name__)
JOB_ID = batch_store.JOB_ID  # whole text only (\A...\Z); the gateway checks job ids with it
FAILED_STATES = frozenset({"FAILURE", "REVOKED"})
STATE_CHECK_AFTER = 1.0  # seconds a chunk may run before its task state is looked at
MAX_CHUNK_LINES = 1_000_000  # as ZIPSCORE_BATCH_CHUNK_SIZE's own limit


class BatchSummary(BaseModel):
    """What `zipscore score --json` prints."""

    job_id: str
    rows: int
    ok: int
    unknown: int
    invalid: int
    seconds: float
    rows_per_second: float
    output: str


class JobProgress(BaseModel):
    """A job's progress and counts; `state` is running, interrupted (resumable), done, or
    failed (its input was refused while it ran: it cannot be resumed)."""

    job_id: str
    state: str
    table_version: int
    rows: int
    ok: int
    unknown: int
    invalid: int
    chunks_done: int
    chunks_total: int
    lines_total: int
    resubmitted: int
    seconds: float


class JobStatus(JobProgress):
    """What `zipscore job status --json` prints: the progress, and the job's files."""

    input: str
    output: str

    def progress(self) -> JobProgress:
        """The progress alone, without the files (which name the server's paths)."""
        return JobProgress.model_validate(self.model_dump(exclude={"input", "output"}))


class Asker(Protocol):
    """What the runner needs from the client: send-and-wait, and the Celery app."""

    settings: Settings

    def call(self, task: str, *args: Any, timeout: float | None = None) -> dict[str, Any]: ...

    @property
    def app(self) -> Any: ...


# Called with the job id and the input's line count once the job exists.
ProgressFactory = Callable[[str, int], Reporter]


@dataclass
class _Flight:
    """A chunk sent and not yet written."""

    start: int
    end: int
    task: Any  # the AsyncResult of the latest send; None for an output found in Redis
    sent_at: float
    attempts: int = 1
    checked_at: float = 0.0


class _LeaseKeeper:
    """Renews the job's lease from a thread every third of its TTL, whatever the job is doing.

    Long steps (checking the whole input again, pinning the table, which may wait up to the
    chunk deadline) never outlast the lease. `held()` is False once a renewal was refused
    (someone else holds the job) or no renewal succeeded within the TTL (Redis unreachable,
    or this process was paused): the job must stop, and write nothing more.
    """

    def __init__(self, store: BatchStore, job: str, owner: str, seconds: float) -> None:
        self.store = store
        self.job = job
        self.owner = owner
        self.seconds = seconds
        self.output: str | None = None  # the output path this job has locked, once it has
        self.renewed_at = time.monotonic()  # the lease was just taken
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._renew_until_stopped, name=f"lease-{job}", daemon=True
        )

    def __enter__(self) -> _LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _renew_until_stopped(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                renewed = self.store.renew_lease(self.job, self.owner, self.seconds)
                if renewed and self.output is not None:
                    holder = self.store.claim_output(self.output, self.job, self.seconds)
                    renewed = holder is None
            except Exception as exc:  # Redis away for now: held() runs out by itself
                logger.warning("job %s: lease not renewed (%s)", self.job, type(exc).__name__)
                continue
            if not renewed:
                self.lost.set()
                return
            self.renewed_at = time.monotonic()

    def held(self) -> bool:
        """Whether the lease is still this producer's, as far as this process can tell."""
        return not self.lost.is_set() and time.monotonic() - self.renewed_at < self.seconds

    def check(self) -> None:
        """Raise TIMEOUT unless the lease is still held (BACKEND_UNAVAILABLE if the job's
        record is gone with it: nothing is left to resume)."""
        if not self.held():
            if self.lost.is_set() and self.store.get_job(self.job) is None:
                raise record_lost(self.job)
            raise ZipscoreError(
                ErrorCode.TIMEOUT, f"job {self.job} was taken by another producer (lease lost)"
            )


class JobFailed(ZipscoreError):
    """The job cannot be finished, by this run or a resume: it is marked failed."""


class OutputBusy(ZipscoreError):
    """The output path is locked by another running job (refused; the job itself is fine)."""


def record_lost(job: str) -> ZipscoreError:
    """The error of a job whose record vanished from Redis mid-run: it cannot be resumed."""
    return ZipscoreError(
        ErrorCode.BACKEND_UNAVAILABLE,
        f"job {job}'s record was lost from Redis (flushed, evicted or expired): "
        "start the job again without --resume",
    )


def input_changed(path: str) -> ZipscoreError:
    return ZipscoreError(
        ErrorCode.BAD_INPUT_FILE,
        f"{path}: input changed while scoring (the job failed; score the file again once "
        "nothing writes to it)",
    )


def _quiet(job: str, total: int) -> Reporter:
    return Reporter(job, total, None)


class BatchRunner:
    """Runs batch jobs through the `batch` queue; one runner can run several jobs in turn."""

    def __init__(self, client: Asker, store: BatchStore) -> None:
        self.client = client
        self.settings = client.settings
        self.store = store
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    # -- public --------------------------------------------------------------------------

    def start(
        self,
        source: Path,
        output: Path,
        *,
        zipcode_column: str = "zipcode",
        chunk_size: int | None = None,
        progress: ProgressFactory = _quiet,
    ) -> BatchSummary:
        """Score `source` into `output` as a new job.

        Raises:
            ZipscoreError: BAD_INPUT_FILE before any job exists if the input cannot be
                scored; TIMEOUT or BACKEND_UNAVAILABLE if the queue or workers fail.
        """
        began = time.monotonic()
        lines = self.settings.batch_chunk_size if chunk_size is None else chunk_size
        if not 1 <= lines <= MAX_CHUNK_LINES:
            raise ZipscoreError(
                ErrorCode.BAD_INPUT_FILE, f"the chunk size must be 1-{MAX_CHUNK_LINES} lines"
            )
        max_bytes = self.settings.batch_max_chunk_mb * MB
        with open_input(source) as handle:
            layout = inspect_handle(handle, source, zipcode_column, max_bytes=max_bytes)
            target = _output_target(output, os.fstat(handle.fileno()))
            job = uuid.uuid4().hex[:16]
            # Until the job's lease keeper renews it, the lock must outlast the table pinning.
            settings = self.settings
            until_run = settings.batch_lease_seconds + settings.batch_chunk_deadline_seconds
            self._claim_output(job, str(target), until_run)
            partial: Path | None = None
            try:
                partial = _create_partial(output, target, job)  # before anything is pinned
                version = int(self._pin(None)["version"])
                fields = _new_job_fields(layout, target, zipcode_column, lines, version)
                fields.update(partial=str(partial), chunk_bytes=max_bytes)
                fields["seconds"] = round(time.monotonic() - began, 3)  # checking and pinning
                self.store.create_job(job, fields)
            except BaseException:
                with contextlib.suppress(Exception):
                    self.store.release_output(str(target), job)
                if partial is not None:
                    partial.unlink(missing_ok=True)
                raise
            return self._run(job, progress, source=handle, layout=layout)

    def resume(self, job: str, *, progress: ProgressFactory = _quiet) -> BatchSummary:
        """Finish an interrupted job from its last written chunk."""
        record = self._job(job)
        if record["state"] == "done":
            return _summary(job, record)
        if record["state"] == "failed":
            raise ZipscoreError(
                ErrorCode.BAD_INPUT_FILE,
                f"job {job} failed ({record.get('error', 'its input was refused')}): "
                "it cannot be resumed; score the file again as a new job",
            )
        return self._run(job, progress)

    def status(self, job: str) -> JobStatus:
        """The job's progress as recorded in Redis."""
        record = self._job(job)
        state = record["state"]
        if state == "running" and not self.store.redis.exists(self.store.lease_key(job)):
            state = "interrupted"
        lines_total = int(record["lines_total"])
        chunk_size = int(record["chunk_size"])
        chunks_total = int(record.get("chunks_total") or math.ceil(lines_total / chunk_size))
        return JobStatus(
            job_id=job,
            state=state,
            input=record["input"],
            output=record["output"],
            table_version=int(record["version"]),
            rows=int(record["rows"]),
            ok=int(record["ok"]),
            unknown=int(record["unknown"]),
            invalid=int(record["invalid"]),
            chunks_done=int(record["chunks_done"]),
            chunks_total=chunks_total,
            lines_total=lines_total,
            resubmitted=int(record.get("resubmitted", 0)),
            seconds=float(record["seconds"]),
        )

    # -- the job -------------------------------------------------------------------------

    def _job(self, job: str) -> dict[str, str]:
        """The job's record; an unknown, expired or incomplete one is refused alike."""
        if not is_job_id(job):
            raise ZipscoreError(ErrorCode.NOT_FOUND, f"not a job id: {job[:40]!r}")
        record = self.store.get_job(job)
        if record is None or not JOB_FIELDS.issubset(record):
            raise ZipscoreError(
                ErrorCode.NOT_FOUND,
                f"no batch job {job} (unknown, or expired after "
                f"{self.settings.batch_ttl_seconds // 86_400} days)",
            )
        return record

    def _pin(self, version: int | None) -> dict[str, Any]:
        wait = self.settings.batch_chunk_deadline_seconds
        return self.client.call("batch.pin_table", version, timeout=wait)

    def _claim_output(self, job: str, target: str, seconds: float | None = None) -> None:
        """Lock the output path for `job`, or refuse it: another running job writes there.

        The lock lasts a lease unless `seconds` says longer (before the job's lease keeper
        runs, pinning the table may take up to the chunk deadline).
        """
        holder = self.store.claim_output(target, job, seconds or self.settings.batch_lease_seconds)
        if holder is not None:
            raise OutputBusy(
                ErrorCode.BAD_INPUT_FILE,
                f"{target}: another running job ({holder}) is writing this output; "
                "choose another path or wait for that job to end",
            )

    def _acquire(self, job: str) -> None:
        """Hold the job's lease, waiting out the lease of a producer that was killed."""
        deadline = time.monotonic() + self.settings.batch_lease_seconds + 1
        while not self.store.take_lease(job, self.owner, self.settings.batch_lease_seconds):
            if time.monotonic() > deadline:
                raise ZipscoreError(
                    ErrorCode.TIMEOUT, f"job {job} is being run by another producer"
                )
            time.sleep(0.2)

    def _run(
        self,
        job: str,
        progress: ProgressFactory,
        *,
        source: BinaryIO | None = None,
        layout: InputLayout | None = None,
    ) -> BatchSummary:
        """Run the job to its end; `source` and `layout` are given by a fresh start.

        The lease is renewed from a thread for the whole run (`_LeaseKeeper`), and every
        write of the job's state checks, in the same Redis transaction, that this producer
        still holds it: a producer that lost its lease stops and leaves the job alone.
        A refused input (it changed while scoring) fails the job for good: its partial
        output is removed and a resume is refused.
        """
        self._acquire(job)
        keeper = _LeaseKeeper(self.store, job, self.owner, self.settings.batch_lease_seconds)
        record: dict[str, str] = {}
        try:
            with keeper, contextlib.ExitStack() as files:
                record = self._job(job)
                keeper.output = record["output"]
                if source is None or layout is None:
                    self._claim_output(job, record["output"])
                    source = files.enter_context(open_input(Path(record["input"])))
                    layout = _check_input(record, source, self.settings)
                    if _published(record, layout):  # stopped between the rename and `done`
                        done = {"state": "done", "chunks_total": record["chunks_done"]}
                        self._update(job, keeper, done)
                        return _summary(job, self._job(job))
                    self._pin(int(record["version"]))
                    self._update(job, keeper, {"state": "running"})
                sink = files.enter_context(_open_output(record))
                reporter = files.enter_context(progress(job, int(record["lines_total"])))
                _JobLoop(
                    self,
                    job,
                    record,
                    source=source,
                    layout=layout,
                    sink=sink,
                    reporter=reporter,
                    keeper=keeper,
                ).run()
            summary = _summary(job, self._job(job))
            metrics.batch_finished(summary)
            return summary
        except ZipscoreError as exc:
            refused = exc.code is ErrorCode.BAD_INPUT_FILE and not isinstance(exc, OutputBusy)
            if (refused or isinstance(exc, JobFailed)) and record and keeper.held():
                self._fail(job, record, exc)
                raise
            self._interrupt(job, keeper, record)
            if record and self._record_gone(job):
                # Whatever failed first (a chunk whose pinned table went with it, a lease),
                # the job is unrecoverable: say so, rather than suggest a resume.
                raise record_lost(job) from None
            raise
        except BaseException:
            self._interrupt(job, keeper, record)
            raise
        finally:
            with contextlib.suppress(Exception):
                self.store.release_lease(job, self.owner)
            if record:
                with contextlib.suppress(Exception):
                    self.store.release_output(record["output"], job)

    def _record_gone(self, job: str) -> bool:
        try:
            return self.store.get_job(job) is None
        except Exception:  # Redis unreachable: nothing is known to be gone
            return False

    def _interrupt(self, job: str, keeper: _LeaseKeeper, record: dict[str, str]) -> None:
        """Leave the job resumable; if its record is gone, its partial output goes too."""
        with contextlib.suppress(Exception):
            if keeper.held():
                self.store.update_job(job, {"state": "interrupted"}, owner=self.owner)
            if record and self.store.get_job(job) is None:
                _remove_partial(record)

    def _fail(self, job: str, record: dict[str, str], exc: ZipscoreError) -> None:
        """Mark the job failed with its error (never resumed), and remove its partial file."""
        error = f"{exc.code.value}: {exc.message}"[:500]
        with contextlib.suppress(Exception):
            self.store.update_job(job, {"state": "failed", "error": error}, owner=self.owner)
        _remove_partial(record)

    def _update(
        self,
        job: str,
        keeper: _LeaseKeeper,
        fields: dict[str, Any],
        *,
        written_chunk: int | None = None,
    ) -> None:
        """Write the job's state if this producer still holds its lease; else stop."""
        keeper.check()
        if self.store.update_job(job, fields, written_chunk=written_chunk, owner=self.owner):
            return
        if self.store.get_job(job) is None:
            raise record_lost(job)
        keeper.lost.set()
        keeper.check()


class _JobLoop:
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
        keeper: _LeaseKeeper,
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
        self.cut_digest = hashlib.sha256()  # of the bytes cut, compared with the check's
        self.cut_end = self.input_offset
        # Chunks a killed producer had in flight may be scored already: look before sending.
        self.reuse_below = self.next_write + self.settings.batch_in_flight
        self.in_flight: dict[int, _Flight] = {}

    def run(self) -> None:
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
                    if index in self.in_flight:
                        self.in_flight[index].task = None  # its output is in Redis
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
            stored = self.store.get_chunk(self.job, self.next_write)
            if stored is None:
                if flight.task is None:  # reused key expired meanwhile: score it again
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

    def _write(self, data: bytes) -> None:
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
            if not self.store.has_chunk(self.job, index) and index >= self.next_write:
                self._resend(index, flight)

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

    def _update(self, fields: dict[str, Any], *, written_chunk: int | None = None) -> None:
        """Write the job's state if the lease is still held; else stop (TIMEOUT)."""
        self.runner._update(self.job, self.keeper, fields, written_chunk=written_chunk)

    def _finish(self) -> None:
        """Check the input once more, then put the output in place, then record `done`."""
        self._check_input_unchanged()
        self._check_rows()
        self.keeper.check()
        _publish(self.sink, self.record)
        fields = {**self._progress(), "state": "done", "chunks_total": self.next_write}
        self._update(fields)
        self.store.redis.delete(self.store.done_key(self.job))


# What every job record holds (`_new_job_fields`); a record without them all is not a job.
JOB_FIELDS = frozenset(
    {
        "state", "input", "output", "fingerprint", "zipcode_column", "column", "columns",
        "newline", "bom", "header", "lines_total", "chunk_size", "version", "chunks_done",
        "input_offset", "output_offset", "rows", "ok", "unknown", "invalid", "seconds",
    }
)  # fmt: skip


def _new_job_fields(
    layout: InputLayout, output: Path, zipcode_column: str, lines: int, version: int
) -> dict[str, Any]:
    return {
        "state": "running",
        "input": str(layout.path.resolve()),
        "output": str(output),
        "fingerprint": layout.fingerprint,
        "inode": layout.inode,
        "digest": layout.digest,
        "zipcode_column": zipcode_column,
        "column": layout.column,
        "columns": layout.columns,
        "newline": layout.newline,
        "bom": int(layout.bom),
        "header": layout.header,
        "lines_total": layout.lines,
        "chunk_size": lines,
        "version": version,
        "chunks_done": 0,
        "input_offset": layout.body_start,
        "output_offset": 0,
        "rows": 0,
        "ok": 0,
        "unknown": 0,
        "invalid": 0,
        "resubmitted": 0,
        "seconds": 0.0,
        "created_at": time.time(),
    }


def _check_input(record: dict[str, str], handle: BinaryIO, settings: Settings) -> InputLayout:
    """A resumed job's input, checked again; refused if it changed since the job started.

    The bytes still to cut (from the recorded offset) are digested apart, for the job to
    compare with what it cuts.
    """
    path = Path(record["input"])
    layout = inspect_handle(
        handle,
        path,
        record["zipcode_column"],
        max_bytes=int(record.get("chunk_bytes") or settings.batch_max_chunk_mb * MB),
        cut_from=int(record["input_offset"]),
    )
    recorded = (record["fingerprint"], record.get("inode"), record.get("digest"))
    now = (layout.fingerprint, str(layout.inode), layout.digest)
    # Records written before inodes and digests were recorded are compared on what they hold.
    if any(old is not None and old != new for old, new in zip(recorded, now, strict=True)):
        raise ZipscoreError(
            ErrorCode.BAD_INPUT_FILE,
            f"{layout.path} changed since job started (size, modification time, inode or "
            "content): score it again as a new job",
        )
    return layout


def _output_target(output: Path, source: os.stat_result) -> Path:
    """Where the output goes (its real path), refused unless it can be a new regular file.

    Raises:
        ZipscoreError: BAD_INPUT_FILE if its directory is missing, or it exists and is the
            input itself (same inode: a hard link, a symlink), a directory or a device.
    """
    try:
        target = output.resolve()
        parent_is_dir = target.parent.is_dir()
        found: os.stat_result | None = os.stat(target) if target.exists() else None
    except (OSError, RuntimeError) as exc:
        raise ZipscoreError(
            ErrorCode.BAD_INPUT_FILE,
            f"{output}: not a usable output path ({getattr(exc, 'strerror', None) or exc})",
        ) from None
    if not parent_is_dir:
        raise ZipscoreError(ErrorCode.BAD_INPUT_FILE, f"{output}: no such directory for the output")
    if found is not None:
        if (found.st_dev, found.st_ino) == (source.st_dev, source.st_ino):
            raise ZipscoreError(ErrorCode.BAD_INPUT_FILE, "the output would overwrite the input")
        if not stat.S_ISREG(found.st_mode):
            kind = "a directory" if stat.S_ISDIR(found.st_mode) else "not a regular file"
            raise ZipscoreError(
                ErrorCode.BAD_INPUT_FILE, f"{output}: {kind}; the output must be a file path"
            )
    return target


def _create_partial(output: Path, target: Path, job: str) -> Path:
    """The job's partial output beside `target`, created empty (proving it can be written)."""
    partial = target.with_name(f".{target.name[:160]}.{job}.part")
    try:
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as exc:
        # A full disk is the server's state, not the caller's choice of path.
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        raise ZipscoreError(
            ErrorCode.BACKEND_UNAVAILABLE if full else ErrorCode.BAD_INPUT_FILE,
            f"{output}: cannot create a file in {target.parent} "
            f"({exc.strerror or type(exc).__name__})",
        ) from None
    return partial


def _published(record: dict[str, str], layout: InputLayout) -> bool:
    """Whether every chunk was written and the output renamed into place already."""
    target = Path(record["output"])
    return (
        bool(record.get("partial"))
        and int(record["input_offset"]) == layout.size
        and not Path(record["partial"]).exists()
        and target.is_file()
        and target.stat().st_size == int(record["output_offset"])
    )


def _partial(record: dict[str, str]) -> Path:
    # A record from before partial files writes its output in place.
    return Path(record.get("partial") or record["output"])


def _remove_partial(record: dict[str, str]) -> None:
    if record.get("partial"):
        with contextlib.suppress(OSError):
            Path(record["partial"]).unlink(missing_ok=True)


def _publish(sink: BinaryIO, record: dict[str, str]) -> None:
    """Make the finished output durable, then rename it over the target in one step."""
    partial, target = _partial(record), Path(record["output"])
    try:
        sink.flush()
        os.fsync(sink.fileno())
        if partial != target:
            os.replace(partial, target)
            directory = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
    except OSError as exc:
        raise ZipscoreError(
            ErrorCode.BACKEND_UNAVAILABLE,
            f"cannot put the output in place at {target} ({exc.strerror or type(exc).__name__})",
        ) from None


@contextlib.contextmanager
def _open_output(record: dict[str, str]) -> Iterator[BinaryIO]:
    """The job's partial output, cut back to the last recorded chunk (or started afresh)."""
    path = _partial(record)
    try:
        sink = _reopen_output(path, record)
    except OSError as exc:
        raise ZipscoreError(
            ErrorCode.BACKEND_UNAVAILABLE,
            f"cannot write the output {path} ({exc.strerror or type(exc).__name__})",
        ) from None
    try:
        yield sink
    finally:
        # Data a failed write left in the buffer fails again at close: the write's error
        # is the one to report. A finished job has flushed and fsynced before this.
        with contextlib.suppress(OSError):
            sink.close()


def _reopen_output(path: Path, record: dict[str, str]) -> BinaryIO:
    offset = int(record["output_offset"])
    if int(record["chunks_done"]) == 0 or offset == 0:
        fresh = path.open("wb")
        with contextlib.ExitStack() as closing:
            closing.callback(fresh.close)
            header = output_header(record["header"]) + record["newline"]
            fresh.write((BOM if record["bom"] == "1" else b"") + header.encode("utf-8"))
            fresh.flush()
            record["output_offset"] = str(fresh.tell())
            closing.pop_all()
        return fresh
    try:
        sink = path.open("r+b")
    except FileNotFoundError:
        raise ZipscoreError(
            ErrorCode.BAD_INPUT_FILE,
            f"{path}: the job's partial output is gone: score the file again as a new job",
        ) from None
    with contextlib.ExitStack() as closing:
        closing.callback(sink.close)
        if not stat.S_ISREG(os.fstat(sink.fileno()).st_mode):
            raise ZipscoreError(ErrorCode.BAD_INPUT_FILE, f"{path}: not a regular file")
        if os.fstat(sink.fileno()).st_size < offset:
            raise ZipscoreError(
                ErrorCode.BAD_INPUT_FILE,
                f"{path} is shorter than the {offset} bytes already written: score it again",
            )
        sink.truncate(offset)
        sink.seek(offset)
        closing.pop_all()
    return sink


def _summary(job: str, record: dict[str, str]) -> BatchSummary:
    rows, seconds = int(record["rows"]), float(record["seconds"])
    return BatchSummary(
        job_id=job,
        rows=rows,
        ok=int(record["ok"]),
        unknown=int(record["unknown"]),
        invalid=int(record["invalid"]),
        seconds=round(seconds, 3),
        rows_per_second=round(rows / seconds, 1) if seconds > 0 else 0.0,
        output=record["output"],
    )
