"""The gateway's batch jobs: uploads streamed to disk, and jobs run on background threads.

    path = await receive_upload(request.stream(), upload_dir / "x.csv", limit_bytes=...)
    launcher = BatchLauncher(client, max_running=2)
    job_id = await asyncio.wrap_future(launcher.start(path, output, zipcode_column="zipcode"))

A job is the producer client's own (`Client.score_file`): the gateway adds no batch logic.
The thread that drives it lives in the gateway process and keeps running after the HTTP
response; the future `start` returns resolves with the job id as soon as the job exists
(its input checked and its table pinned), or with the error that stopped it before, such as
`BAD_INPUT_FILE`. If the gateway process dies mid-batch the job stays in Redis: its lease
expires, its status turns `interrupted`, and `resume` (`POST /batches/{id}/resume`, or
`zipscore score --resume ID` on a host that sees the same files) finishes it without
scoring its written chunks again.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Protocol

import anyio

from producer.batch.progress import Reporter
from producer.batch.results import BatchSummary, JobStatus
from producer.batch.runner import ProgressFactory
from producer.gateway.limits import Refusal
from worker.contract.errors import ErrorCode, ZipscoreError

logger = logging.getLogger(__name__)
# The upload directory's file system (or the gateway's quota) is full: no retry helps
# until space is freed.
STORAGE_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
# Seconds a refused batch is asked to wait (`Retry-After`) for a slot to be given back.
SLOTS_RETRY_AFTER = 10


class UploadTooLarge(Exception):
    """The request body is over the configured limit (the partial file is removed)."""


class BatchClient(Protocol):
    """What the launcher needs from the producer client."""

    def score_file(
        self,
        source: Path,
        output: Path,
        *,
        zipcode_column: str = ...,
        chunk_size: int | None = ...,
        progress: ProgressFactory | None = ...,
    ) -> BatchSummary: ...

    def resume_batch(
        self, job_id: str, *, progress: ProgressFactory | None = ...
    ) -> BatchSummary: ...

    def batch_status(self, job_id: str) -> JobStatus: ...


async def receive_upload(chunks: AsyncIterator[bytes], target: Path, limit_bytes: int) -> int:
    """Write the request body to `target` as it arrives; the number of bytes written.

    Raises:
        UploadTooLarge: past `limit_bytes` (the partial file is deleted).
    """
    written = 0
    try:
        async with await anyio.open_file(target, "wb") as sink:
            async for piece in chunks:
                written += len(piece)
                if written > limit_bytes:
                    raise UploadTooLarge(f"the upload is over {limit_bytes} bytes")
                await sink.write(piece)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return written


def upload_paths(directory: Path) -> tuple[Path, Path]:
    """A fresh (input, output) pair of file names in `directory`, created if missing."""
    directory.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    return directory / f"{token}.csv", directory / f"{token}.scored.csv"


class Slot:
    """One of a launcher's batch slots, held from before an upload is read until its job ends.

    `release` gives it back (at most once); a job started with it releases it when it ends.
    """

    def __init__(self, release: Callable[[], None]) -> None:
        self._release = release
        self._lock = threading.Lock()
        self._held = True

    def release(self) -> None:
        with self._lock:
            held, self._held = self._held, False
        if held:
            self._release()


class BatchLauncher:
    """Runs batch jobs on daemon threads of this process, at most `max_running` at once."""

    def __init__(self, client: BatchClient, max_running: int) -> None:
        self.client = client
        self.max_running = max_running
        self._slots = threading.BoundedSemaphore(max_running)

    def reserve(self) -> Slot:
        """Take a slot now, before the upload is read (check and take are one step).

        Raises:
            Refusal: BACKEND_UNAVAILABLE (with `Retry-After`) at once when `max_running`
                slots are taken.
        """
        if not self._slots.acquire(blocking=False):
            raise Refusal(
                ErrorCode.BACKEND_UNAVAILABLE,
                f"this gateway is running {self.max_running} batches already; retry later",
                {"Retry-After": str(SLOTS_RETRY_AFTER)},
            )
        return Slot(self._slots.release)

    def wait_idle(self, timeout: float) -> bool:
        """True once no batch of this launcher runs (within `timeout` seconds), else False."""
        deadline = time.monotonic() + timeout
        taken = 0
        try:
            while taken < self.max_running:
                if not self._slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
                    return False
                taken += 1
            return True
        finally:
            for _ in range(taken):
                self._slots.release()

    def start(
        self, source: Path, output: Path, *, zipcode_column: str, slot: Slot | None = None
    ) -> Future[str]:
        """Score `source` into `output` as a new job, in the background, in `slot` (taken
        now when not given; the job gives it back when it ends).

        Raises:
            ZipscoreError: BACKEND_UNAVAILABLE at once when no slot is given and none is free.
        """

        def run(progress: ProgressFactory) -> BatchSummary:
            return self.client.score_file(
                source, output, zipcode_column=zipcode_column, progress=progress
            )

        return self._launch(run, f"batch-{source.stem[:8]}", slot or self.reserve())

    def resume(self, job_id: str) -> Future[str]:
        """Finish an interrupted job in the background (same refusals as `start`)."""

        def run(progress: ProgressFactory) -> BatchSummary:
            return self.client.resume_batch(job_id, progress=progress)

        return self._launch(run, f"batch-{job_id[:8]}", self.reserve())

    def _launch(
        self, run: Callable[[ProgressFactory], BatchSummary], name: str, slot: Slot
    ) -> Future[str]:
        started: Future[str] = Future()

        def progress(job: str, total: int) -> Reporter:
            started.set_result(job)
            return Reporter(job, total, None)

        def drive() -> None:
            try:
                summary = run(progress)
                # A job found already published has no rows left to report progress on.
                if not started.done():
                    started.set_result(summary.job_id)
                logger.info("batch job %s done: %d rows", summary.job_id, summary.rows)
            except BaseException as exc:
                if not started.done():
                    started.set_exception(exc)
                elif isinstance(exc, ZipscoreError):
                    logger.warning(
                        "batch job %s stopped: %s: %s (resumable: POST /batches/%s/resume)",
                        started.result(),
                        exc.code.value,
                        exc.message,
                        started.result(),
                    )
                elif isinstance(exc, OSError) and exc.errno in STORAGE_FULL:
                    logger.warning(
                        "batch job %s stopped: the upload directory is full (%s); resumable"
                        " once space is freed: POST /batches/%s/resume",
                        started.result(),
                        errno.errorcode[exc.errno],
                        started.result(),
                    )
                else:
                    logger.exception("batch job %s stopped (resumable)", started.result())
            finally:
                slot.release()

        # Daemon threads: a stopping gateway does not wait for batches; they stay resumable.
        try:
            threading.Thread(target=drive, name=name, daemon=True).start()
        except BaseException:
            slot.release()
            raise
        return started
