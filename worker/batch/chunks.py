"""The batch tasks' plain code: pinning a table version, and scoring one chunk message.

    pin_table(store, batch, None)      # -> {"version": N}: table N copied to Redis
    score_message(batch, message)      # -> {"chunk": i, "rows": ..., "ok": ..., ...}

Called by the thin tasks `batch.pin_table` and `batch.score_chunk` (worker/batch/tasks.py) and
tested without Celery. A chunk message is validated before anything is done with it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from worker import runtime
from worker.batch.fast_scoring import score_bytes
from worker.batch.scoring import score_chunk
from worker.contract.batch_keys import is_job_id
from worker.contract.batch_output import ChunkResult, ScoredBytes
from worker.contract.batch_store import BatchStore
from worker.contract.errors import ErrorCode, ZipscoreError
from worker.lookups.zipcodes import ZipcodeStore

# risk_table_meta.version is a Postgres bigint: a larger number is no table version at all.
MAX_TABLE_VERSION = 2**63 - 1


class ChunkMessage(BaseModel):
    """One `batch.score_chunk` message: which chunk of which job, and how to read its rows.

    The rows themselves wait in Redis under the chunk's input key (see
    worker/contract/batch_store.py).
    Strict: numbers must be JSON integers (no bools, floats or numeric strings).
    """

    model_config = ConfigDict(strict=True)

    job: str
    chunk: int = Field(ge=0)
    version: int = Field(ge=0, le=MAX_TABLE_VERSION)
    column: int = Field(ge=0)
    columns: int = Field(ge=1)
    newline: Literal["\n", "\r\n"]

    @field_validator("job")
    @classmethod
    def _job_id(cls, job: str) -> str:
        if not is_job_id(job):
            raise ValueError("not a job id")
        return job

    @model_validator(mode="after")
    def _column_in_header(self) -> ChunkMessage:
        if self.column >= self.columns:
            raise ValueError("column must be less than columns")
        return self


def parse_message(message: object) -> ChunkMessage:
    """Validate a chunk message; anything else is refused as BAD_INPUT_FILE."""
    try:
        return ChunkMessage.model_validate(message)
    except ValidationError as exc:
        where = ", ".join(str(e["loc"][0]) for e in exc.errors() if e["loc"]) or "message"
        raise ZipscoreError(ErrorCode.BAD_INPUT_FILE, f"bad chunk message ({where})") from None


def parse_version(version: object) -> int | None:
    """A `batch.pin_table` argument: None (a new job) or a table version, a bigint >= 0.

    Raises:
        ZipscoreError: BAD_INPUT_FILE for anything else (bools, and numbers no version can
            reach, which would otherwise read the whole table only to find it is not there).
    """
    if version is None or (type(version) is int and 0 <= version <= MAX_TABLE_VERSION):
        return version
    raise ZipscoreError(
        ErrorCode.BAD_INPUT_FILE,
        f"bad table version {str(version)[:20]!r}: expected an integer "
        f"0-{MAX_TABLE_VERSION} or null",
    )


def pin_table(store: ZipcodeStore, batch: BatchStore, version: object) -> dict[str, Any]:
    """Copy the current risk table to Redis for a new job, or check a running job's copy.

    With `version=None` the current version is read and, unless an earlier job's copy of it
    is still in Redis (then kept alive), read again with its rows (one statement, one
    snapshot) and stored under that version. With a version (a resumed job), its stored copy
    is kept alive; if it expired, it is stored again only if Postgres still holds that version.
    Any other `version` (see `parse_version`) is refused before anything is read.
    """
    version = parse_version(version)
    if version is not None and batch.has_table(version):
        return {"version": version}
    if version is None and batch.has_table(current := store.current_version()):
        return {"version": current}  # an earlier job pinned it: its copy is kept alive
    current, factors = store.snapshot()
    if version is not None and current != version:
        raise ZipscoreError(
            ErrorCode.BACKEND_UNAVAILABLE,
            f"risk table version {version}, which this job is pinned to, has expired "
            f"(the table is at version {current} now): score the file again",
        )
    batch.put_table(current, factors)
    return {"version": current}


def score_message(batch: BatchStore, message: object) -> dict[str, Any]:
    """Score one chunk with its job's pinned table and store the output under its key.

    A chunk the producer has already written (a late redelivery) is not scored again.
    """
    chunk = parse_message(message)
    written = batch.chunks_written(chunk.job)
    if written is not None and chunk.chunk < written:
        return {"chunk": chunk.chunk, "skipped": True}
    table = runtime.scoring_table(chunk.version)
    if table is None:
        raise ZipscoreError(
            ErrorCode.BACKEND_UNAVAILABLE,
            f"risk table version {chunk.version} is not pinned in Redis (expired?)",
        )
    data = batch.get_input(chunk.job, chunk.chunk)
    if data is None:
        # Written and cleaned up meanwhile (a late duplicate), or expired: the producer's
        # deadline sends it again if it still needs it.
        return {"chunk": chunk.chunk, "skipped": True}
    # The vectorised path first; None leaves the chunk to the exact one.
    result: ChunkResult | ScoredBytes | None = score_bytes(
        data, table, column=chunk.column, columns=chunk.columns, newline=chunk.newline
    )
    if result is None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ZipscoreError(
                ErrorCode.BAD_INPUT_FILE,
                f"chunk {chunk.chunk} is not UTF-8 (did the input change?)",
            ) from None
        result = score_chunk(
            text, table, column=chunk.column, columns=chunk.columns, newline=chunk.newline
        )
    batch.put_chunk(chunk.job, chunk.chunk, result)
    return {
        "chunk": chunk.chunk,
        "rows": result.rows,
        "ok": result.ok,
        "unknown": result.unknown,
        "invalid": result.invalid,
    }
