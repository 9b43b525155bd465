"""What a batch job reports: the summary of a run, and the job's progress and status."""

from __future__ import annotations

from pydantic import BaseModel


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


def job_summary(job: str, record: dict[str, str]) -> BatchSummary:
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
