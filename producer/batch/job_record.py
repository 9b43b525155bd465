"""A batch job's record in Redis: the fields a new job starts with, the check a resumed job
makes that its input is still the file it started with, and the record read back (a job,
its status)."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, BinaryIO

from producer.batch.cutting import MB
from producer.batch.prescan import InputLayout, inspect_handle
from producer.batch.results import JobStatus
from worker.contract.batch_keys import is_job_id
from worker.contract.batch_store import BatchStore
from worker.contract.errors import ErrorCode, ZipscoreError
from worker.contract.settings import Settings

# What every job record holds (`new_job_fields`); a record without them all is not a job.
JOB_FIELDS = frozenset(
    {
        "state", "input", "output", "fingerprint", "zipcode_column", "column", "columns",
        "newline", "bom", "header", "lines_total", "chunk_size", "version", "chunks_done",
        "input_offset", "output_offset", "rows", "ok", "unknown", "invalid", "seconds",
    }
)  # fmt: skip


def new_job_fields(
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


def check_input(record: dict[str, str], handle: BinaryIO, settings: Settings) -> InputLayout:
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


def load_job(store: BatchStore, job: str, ttl_seconds: int) -> dict[str, str]:
    """The job's record; an unknown, expired or incomplete one is refused alike."""
    if not is_job_id(job):
        raise ZipscoreError(ErrorCode.NOT_FOUND, f"not a job id: {job[:40]!r}")
    record = store.get_job(job)
    if record is None or not JOB_FIELDS.issubset(record):
        raise ZipscoreError(
            ErrorCode.NOT_FOUND,
            f"no batch job {job} (unknown, or expired after {ttl_seconds // 86_400} days)",
        )
    return record


def job_status(store: BatchStore, job: str, record: dict[str, str]) -> JobStatus:
    """The job's progress as `record` holds it; a running job nobody holds is interrupted."""
    state = record["state"]
    if state == "running" and not store.has_lease(job):
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
