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
import os
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from producer.batch.cutting import MB
from producer.batch.errors import JobFailed, OutputBusy, record_lost
from producer.batch.job_loop import JobLoop
from producer.batch.job_record import check_input, job_status, load_job, new_job_fields
from producer.batch.lease import LeaseKeeper
from producer.batch.output import (
    create_partial,
    is_published,
    open_output,
    output_target,
    remove_partial,
)
from producer.batch.prescan import InputLayout, inspect_handle, open_input
from producer.batch.progress import Reporter
from producer.batch.results import BatchSummary, JobStatus, job_summary
from worker.contract.batch_store import BatchStore
from worker.contract.errors import ErrorCode, ZipscoreError
from worker.contract.settings import Settings

MAX_CHUNK_LINES = 1_000_000  # as ZIPSCORE_BATCH_CHUNK_SIZE's own limit


class Asker(Protocol):
    """What the runner needs from the client: send-and-wait, and the Celery app."""

    settings: Settings

    def call(self, task: str, *args: Any, timeout: float | None = None) -> dict[str, Any]: ...

    @property
    def app(self) -> Any: ...


# Called with the job id and the input's line count once the job exists.
ProgressFactory = Callable[[str, int], Reporter]


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
            target = output_target(output, os.fstat(handle.fileno()))
            job = uuid.uuid4().hex[:16]
            # Until the job's lease keeper renews it, the lock must outlast the table pinning.
            settings = self.settings
            until_run = settings.batch_lease_seconds + settings.batch_chunk_deadline_seconds
            self._claim_output(job, str(target), until_run)
            partial: Path | None = None
            try:
                partial = create_partial(output, target, job)  # before anything is pinned
                version = int(self._pin(None)["version"])
                fields = new_job_fields(layout, target, zipcode_column, lines, version)
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
            return job_summary(job, record)
        if record["state"] == "failed":
            raise ZipscoreError(
                ErrorCode.BAD_INPUT_FILE,
                f"job {job} failed ({record.get('error', 'its input was refused')}): "
                "it cannot be resumed; score the file again as a new job",
            )
        return self._run(job, progress)

    def status(self, job: str) -> JobStatus:
        """The job's progress as recorded in Redis."""
        return job_status(self.store, job, self._job(job))

    # -- the job -------------------------------------------------------------------------

    def _job(self, job: str) -> dict[str, str]:
        """The job's record; an unknown, expired or incomplete one is refused alike."""
        return load_job(self.store, job, self.settings.batch_ttl_seconds)

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

        The lease is renewed from a thread for the whole run (`LeaseKeeper`), and every
        write of the job's state checks, in the same Redis transaction, that this producer
        still holds it: a producer that lost its lease stops and leaves the job alone.
        A refused input (it changed while scoring) fails the job for good: its partial
        output is removed and a resume is refused.
        """
        self._acquire(job)
        keeper = LeaseKeeper(self.store, job, self.owner, self.settings.batch_lease_seconds)
        record: dict[str, str] = {}
        try:
            with keeper, contextlib.ExitStack() as files:
                record = self._job(job)
                keeper.output = record["output"]
                if source is None or layout is None:
                    self._claim_output(job, record["output"])
                    source = files.enter_context(open_input(Path(record["input"])))
                    layout = check_input(record, source, self.settings)
                    if is_published(record, layout):  # stopped between the rename and `done`
                        done = {"state": "done", "chunks_total": record["chunks_done"]}
                        keeper.update(done)
                        return job_summary(job, self._job(job))
                    self._pin(int(record["version"]))
                    keeper.update({"state": "running"})
                sink = files.enter_context(open_output(record))
                reporter = files.enter_context(progress(job, int(record["lines_total"])))
                JobLoop(
                    self,
                    job,
                    record,
                    source=source,
                    layout=layout,
                    sink=sink,
                    reporter=reporter,
                    keeper=keeper,
                ).run()
            return job_summary(job, self._job(job))
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

    def _interrupt(self, job: str, keeper: LeaseKeeper, record: dict[str, str]) -> None:
        """Leave the job resumable; if its record is gone, its partial output goes too."""
        with contextlib.suppress(Exception):
            if keeper.held():
                self.store.update_job(job, {"state": "interrupted"}, owner=self.owner)
            if record and self.store.get_job(job) is None:
                remove_partial(record)

    def _fail(self, job: str, record: dict[str, str], exc: ZipscoreError) -> None:
        """Mark the job failed with its error (never resumed), and remove its partial file."""
        error = f"{exc.code.value}: {exc.message}"[:500]
        with contextlib.suppress(Exception):
            self.store.update_job(job, {"state": "failed", "error": error}, owner=self.owner)
        remove_partial(record)
