"""What the batch routes check and clean up: which jobs and files this gateway holds,
refusals scrubbed of the server's paths, a full disk (507), an upload over the limit (413).
"""

from __future__ import annotations

import errno
import functools
import logging
from concurrent.futures import Future
from pathlib import Path

from fastapi.responses import JSONResponse

from producer.batch.results import JobStatus
from producer.client import Client
from producer.gateway.errors import error_response, hide_paths
from producer.gateway.jobs import STORAGE_FULL, Slot
from producer.gateway.limits import Refusal
from producer.gateway.offload import Offload
from worker.contract.batch_keys import JOB_ID
from worker.contract.errors import ErrorCode, ZipscoreError
from worker.contract.settings import Settings

logger = logging.getLogger(__name__)


class NotFinished(Exception):
    """409: the job's result is asked for before the job is done."""

    def __init__(self, status: JobStatus) -> None:
        super().__init__(status.job_id)
        self.status = status


class UnknownJob(Exception):
    """404: no such job (or not one whose files this gateway holds)."""


async def job_status(job_id: str, client: Client, run: Offload) -> JobStatus:
    """The job's recorded progress, read on a thread; UnknownJob when there is no such job."""
    if not JOB_ID.match(job_id):
        raise UnknownJob(f"no batch job {job_id[:40]!r}")
    try:
        status: JobStatus = await run(functools.partial(client.batch_status, job_id))
    except ZipscoreError as exc:
        # batch_status refuses one thing only: a job id it does not know.
        if exc.code is ErrorCode.NOT_FOUND:
            raise UnknownJob(exc.message) from None
        raise
    return status


def held_output(status: JobStatus, upload_dir: Path) -> Path:
    """The job's finished output, when it lies in this gateway's upload directory."""
    output = Path(status.output)
    if output.parent != upload_dir or not output.is_file():
        raise UnknownJob(f"the files of job {status.job_id} are not held by this gateway")
    return output


def undo_start(started: Future[str] | None, slot: Slot, *files: Path) -> None:
    """Clean up after an upload whose job did not (or may not yet) start."""
    if started is None:  # else the job's thread has the slot, and gives it back
        slot.release()
    # A job that may be running owns its upload (the client went away meanwhile): removing
    # it would leave that job an input it can no longer be resumed from.
    if started is None or started.done():
        _remove(*files)


def check_resumable_here(status: JobStatus, upload_dir: Path) -> None:
    """Refuse to resume a job whose upload this gateway does not hold. Its output need not
    exist: an unfinished job writes a partial file beside it, renamed into place at the end."""
    source, output = Path(status.input), Path(status.output)
    if output.parent != upload_dir or source.parent != upload_dir or not source.is_file():
        raise UnknownJob(f"the files of job {status.job_id} are not held by this gateway")


def scrubbed(exc: ZipscoreError, *places: Path) -> ZipscoreError:
    """`exc` with `places` hidden from its message (and its HTTP headers kept)."""
    message = hide_paths(exc.message, *places)
    if isinstance(exc, Refusal):
        return Refusal(exc.code, message, exc.headers)
    return ZipscoreError(exc.code, message)


def _remove(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def storage_full(exc: BaseException) -> JSONResponse | None:
    """507 Insufficient Storage when `exc` is the upload directory being full, else None."""
    if not isinstance(exc, OSError) or exc.errno not in STORAGE_FULL:
        return None
    reason = errno.errorcode[exc.errno]
    logger.warning("upload refused: the upload directory is full (%s)", reason)
    return error_response(
        ErrorCode.BACKEND_UNAVAILABLE,
        f"no space left to store the upload ({reason}); retry once space is freed",
        507,
    )


def too_large(settings: Settings) -> JSONResponse:
    return error_response(
        ErrorCode.BAD_INPUT_FILE,
        f"the upload is over the limit of {settings.gateway_max_upload_mb} MB",
        413,
    )
