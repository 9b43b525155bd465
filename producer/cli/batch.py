"""`zipscore score` and `zipscore job status`: CSV portfolios through the batch queue."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from producer.cli.answers import (
    ClientFactory,
    answer_or_fail,
    emit,
    fail,
    files_not_streams,
    json_option,
)
from worker.contract.errors import ErrorCode, ZipscoreError


@click.command()
@click.argument(
    "source", required=False, type=click.Path(path_type=Path), callback=files_not_streams
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    callback=files_not_streams,
    help="Where to write.",
)
@click.option("--zipcode-column", default="zipcode", show_default=True, help="Column name.")
@click.option(
    "--chunk-size", type=click.IntRange(1, 1_000_000), help="Lines per chunk (1-1000000)."
)
@click.option("--resume", "resume_job", metavar="JOB_ID", help="Finish an interrupted job.")
@json_option
@click.pass_obj
def score(
    make_client: ClientFactory,
    *,
    source: Path | None,
    output: Path | None,
    zipcode_column: str,
    chunk_size: int | None,
    resume_job: str | None,
    as_json: bool,
) -> None:
    """Score a CSV portfolio through the batch queue.

    Every row of SOURCE is written to OUTPUT, in order, with its risk factor.
    """
    from producer.batch.progress import Reporter, progress_for
    from worker.contract.heap import keep_freed_memory_for_reuse

    keep_freed_memory_for_reuse()  # this process scans the file: chunk after chunk of arrays
    if resume_job is None and (source is None or output is None):
        raise click.UsageError("give SOURCE and -o OUTPUT, or --resume JOB_ID")
    if resume_job is not None and (source is not None or output is not None):
        raise click.UsageError("--resume takes the input and output recorded in the job")
    started: list[str] = []

    def progress(job: str, total: int) -> Reporter:
        started.append(job)
        return progress_for(job, total)

    def resume_hint(client: Any) -> str | None:
        """The job to resume, if there is one a resume can finish (never a lost record).

        With Redis unreachable the record cannot be read now, yet it is not lost: the job
        id is the one handle to finish the work once Redis is back.
        """
        if not started:
            return None
        try:
            state = client.batch_status(started[0]).state
        except ZipscoreError as exc:  # lost or expired (NOT_FOUND): a resume would fail
            return started[0] if exc.code is ErrorCode.BACKEND_UNAVAILABLE else None
        except Exception:
            return None
        return started[0] if state in ("interrupted", "running") else None

    client: Any = None
    try:
        client = make_client()
        if resume_job is not None:
            summary = client.resume_batch(resume_job, progress=progress)
        else:
            assert source is not None
            assert output is not None
            summary = client.score_file(
                source,
                output,
                zipcode_column=zipcode_column,
                chunk_size=chunk_size,
                progress=progress,
            )
    except ZipscoreError as exc:
        if not exc.code.is_refused_input and (job := resume_hint(client)) is not None:
            exc.message += f" (resume with: zipscore score --resume {job})"
        fail(exc, as_json)
    except KeyboardInterrupt:
        job = resume_hint(client)
        hint = f"; resume with: zipscore score --resume {job}" if job else ""
        click.echo(f"zipscore: interrupted{hint}", err=True)
        sys.exit(130)  # 128 + SIGINT, as for every command
    human = (
        f"scored {summary.rows} rows (ok {summary.ok}, unknown {summary.unknown}, "
        f"invalid {summary.invalid}) in {summary.seconds:.1f} s, "
        f"{summary.rows_per_second:,.0f} rows/s -> {summary.output} (job {summary.job_id})"
    )
    emit(summary.model_dump(), as_json, human)


@click.group()
def job() -> None:
    """Batch jobs: the progress of one."""


@job.command("status")
@click.argument("job_id")
@json_option
@click.pass_obj
def job_status(make_client: ClientFactory, job_id: str, as_json: bool) -> None:
    """Progress of batch job JOB_ID."""
    status = answer_or_fail(lambda: make_client().batch_status(job_id), as_json)
    human = (
        f"job {status.job_id}: {status.state}, {status.rows} rows "
        f"(ok {status.ok}, unknown {status.unknown}, invalid {status.invalid}), "
        f"chunks {status.chunks_done}/{status.chunks_total}, {status.output}"
    )
    emit(status.model_dump(), as_json, human)
