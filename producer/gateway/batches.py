"""The batch routes: POST /batches (a CSV scored in the background), its progress, its
resume and its scored CSV.

    add_batch_routes(app, context)

An upload is streamed to the upload directory and checked whole before a job exists; the
job runs on a thread of `producer.gateway.jobs.BatchLauncher`. No answer names a path on
the server.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import Future
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel

from producer.batch.results import JobProgress
from producer.gateway.batch_files import (
    NotFinished,
    UnknownJob,
    check_resumable_here,
    held_output,
    job_status,
    scrubbed,
    storage_full,
    too_large,
    undo_start,
)
from producer.gateway.context import Context
from producer.gateway.errors import error_response
from producer.gateway.jobs import UploadTooLarge, receive_upload, upload_paths
from producer.gateway.openapi import documented_errors, success
from worker.contract.errors import ErrorCode, ZipscoreError


class BatchAccepted(BaseModel):
    job_id: str


_ACCEPTED = {
    **success({"job_id": "3f2a9c01d4e5b6a7"}, "Accepted: the job runs in the background"),
    "headers": {
        "Location": {
            "description": "The job's progress: /batches/{job_id}",
            "schema": {"type": "string"},
        }
    },
}
_PROGRESS_EXAMPLE = {
    "job_id": "3f2a9c01d4e5b6a7",
    "state": "running",
    "table_version": 3,
    "rows": 150000,
    "ok": 148500,
    "unknown": 0,
    "invalid": 1500,
    "chunks_done": 3,
    "chunks_total": 20,
    "lines_total": 1000000,
    "resubmitted": 0,
    "seconds": 0.9,
}


def add_batch_routes(app: FastAPI, context: Context) -> None:
    client, run, launcher = context.client, context.run_batch, context.launcher
    settings, upload_dir, limit_bytes = context.settings, context.upload_dir, context.limit_bytes

    @app.post(
        "/batches",
        status_code=202,
        response_model=BatchAccepted,
        responses={
            202: _ACCEPTED,
            **documented_errors(
                400,
                *context.auth_errors,
                413,
                *((429,) if context.keys else ()),
                503,
                504,
                507,
                example=(
                    ErrorCode.BAD_INPUT_FILE,
                    "upload: no column 'zipcode' in the header (columns: 'postcode')",
                ),
            ),
        },
        tags=["batches"],
        operation_id="createBatch",
        summary="Score a CSV in the background",
        dependencies=context.guarded,
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": "The CSV to score (header row, a zipcode column), as the body.",
                "content": {"text/csv": {"schema": {"type": "string"}}},
            }
        },
    )
    async def create_batch(
        request: Request,
        zipcode_column: Annotated[str, Query(max_length=200)] = "zipcode",
    ) -> JSONResponse:
        """Score a CSV in the background: 202 with the job id and its `Location`.

        The body is streamed to disk (at most ZIPSCORE_GATEWAY_MAX_UPLOAD_MB, else 413) and
        checked whole before any job exists (BAD_INPUT_FILE, 400). With API keys, each key
        starts at most ZIPSCORE_GATEWAY_BATCHES_PER_MINUTE batches a minute (else 429).
        """
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit_bytes:
            return too_large(settings)
        if key_id := getattr(request.state, "key_id", ""):  # set by the key check
            context.rate.take(key_id)
        # The slot is taken before a byte of the body is read, so a refused upload is never
        # written. Once `start` returns, the job owns it (and gives it back when it ends).
        slot = launcher.reserve()
        try:
            source, output = await run(functools.partial(upload_paths, upload_dir))
        except BaseException as exc:
            slot.release()
            if (full := storage_full(exc)) is not None:
                return full
            raise
        started: Future[str] | None = None
        try:
            await receive_upload(request.stream(), source, limit_bytes)
            started = await run(
                functools.partial(
                    launcher.start, source, output, zipcode_column=zipcode_column, slot=slot
                )
            )
            job = await asyncio.wrap_future(started)
        except BaseException as exc:
            undo_start(started, slot, source, output)
            if isinstance(exc, UploadTooLarge):
                return too_large(settings)
            if (full := storage_full(exc)) is not None:
                return full
            if isinstance(exc, ZipscoreError):
                raise scrubbed(exc, source, output) from None
            raise
        return JSONResponse(
            BatchAccepted(job_id=job).model_dump(),
            status_code=202,
            headers={"Location": f"/batches/{job}"},
        )

    @app.get(
        "/batches/{job_id}",
        response_model=JobProgress,
        responses={
            200: success(_PROGRESS_EXAMPLE),
            **documented_errors(400, *context.auth_errors, 404, 503),
        },
        tags=["batches"],
        operation_id="getBatch",
        summary="A batch job's progress",
        dependencies=context.guarded,
    )
    async def batch_progress(job_id: str) -> JobProgress:
        """A job's progress and counts."""
        return (await job_status(job_id, client, run)).progress()

    @app.post(
        "/batches/{job_id}/resume",
        status_code=202,
        response_model=BatchAccepted,
        responses={
            202: _ACCEPTED,
            **documented_errors(400, *context.auth_errors, 404, 409, 503, 504),
        },
        tags=["batches"],
        operation_id="resumeBatch",
        summary="Finish an interrupted batch job",
        dependencies=context.guarded,
    )
    async def resume_batch(job_id: str) -> JSONResponse:
        """Finish an interrupted job (e.g. after a gateway restart) in the background."""
        status = await job_status(job_id, client, run)
        if status.state == "running":
            return error_response(ErrorCode.CONFLICT, f"job {job_id} is running; nothing to resume")
        if status.state != "done":
            check_resumable_here(status, upload_dir)
            try:
                started = await run(functools.partial(launcher.resume, job_id))
                await asyncio.wrap_future(started)
            except ZipscoreError as exc:  # e.g. its upload changed: named by its path
                raise scrubbed(exc, Path(status.input), Path(status.output)) from None
        return JSONResponse(
            BatchAccepted(job_id=job_id).model_dump(),
            status_code=202,
            headers={"Location": f"/batches/{job_id}"},
        )

    @app.get(
        "/batches/{job_id}/result",
        response_class=FileResponse,
        responses={
            200: {
                "description": "The scored CSV",
                "content": {
                    "text/csv": {
                        "schema": {"type": "string"},
                        "example": "zipcode,risk_factor,status,error\n9000,B,ok,\n",
                    }
                },
            },
            **documented_errors(400, *context.auth_errors, 404, 409, 503),
        },
        tags=["batches"],
        operation_id="getBatchResult",
        summary="A batch job's scored CSV",
        dependencies=context.guarded,
    )
    async def batch_result(job_id: str) -> FileResponse:
        """The scored CSV, streamed; 409 until the job is done."""
        status = await job_status(job_id, client, run)
        if status.state != "done":
            raise NotFinished(status)
        return FileResponse(
            held_output(status, upload_dir), media_type="text/csv", filename=f"{job_id}.csv"
        )

    @app.exception_handler(NotFinished)
    async def not_finished(_: Request, exc: NotFinished) -> JSONResponse:
        status = exc.status
        return error_response(
            ErrorCode.CONFLICT,
            f"job {status.job_id} is {status.state} ({status.chunks_done}/{status.chunks_total}"
            " chunks): its result is there once GET /batches/{id} says done",
        )

    @app.exception_handler(UnknownJob)
    async def unknown_job(_: Request, exc: UnknownJob) -> JSONResponse:
        return error_response(ErrorCode.NOT_FOUND, str(exc))
