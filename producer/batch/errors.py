"""Why a batch job stops for good, or cannot go on: the errors the runner raises itself."""

from __future__ import annotations

from worker.contract.errors import ErrorCode, ZipscoreError


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
