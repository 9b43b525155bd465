"""zipscore's HTTP gateway: a thin ASGI front (FastAPI) over the producer client.

    zipscore serve [--host 127.0.0.1] [--port 5000]       # uvicorn, its own process
    curl http://127.0.0.1:5000/zipcodes/9000              # OpenAPI at /docs, /openapi.json

Every answer comes from `producer.client.Client`, exactly as the CLI's do; the gateway adds
no business logic, only HTTP: statuses, the contract's error body, uploads and background
batch jobs (`producer.gateway_jobs`).

The event loop never waits on Redis or a worker: a cache hit is read with redis.asyncio
(`producer.gateway_cache`, the client's own keys), and every other client call runs on a
thread and is awaited, so a slow lookup delays its own request only. Questions (a send and
the wait for a task's result) go through `producer.gateway_limits`: at most
`ZIPSCORE_GATEWAY_THREADS` at once, a bounded line, one deadline each. Batch calls (a
status, an upload's files) and readiness probes have threads of their own, so questions
that wait out a dead worker hold up neither.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Protocol, TypeVar

import redis
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from producer.batch import JOB_ID, JobProgress, JobStatus
from producer.client import Client, IndexAnswer, LookupResult, RiskFactorListing
from producer.gateway_cache import AsyncCacheReader
from producer.gateway_jobs import (
    STORAGE_FULL,
    BatchLauncher,
    UploadTooLarge,
    receive_upload,
    upload_paths,
)
from producer.gateway_limits import QuestionGate, Saturated
from worker.cache import BY_RISK_FACTOR, LOOKUP
from worker.errors import ErrorCode, ZipscoreError
from worker.index_cache import utcnow, with_staleness
from worker.settings import Settings, get_settings
from worker.validation import parse_base_year, parse_risk_factor, parse_zipcode

T = TypeVar("T")
logger = logging.getLogger(__name__)


class Offload(Protocol):
    """Runs a blocking call off the event loop and awaits it. The benchmark swaps in a
    blocking variant (the call made inline, on the loop) to show the difference."""

    def __call__(self, call: Callable[[], T], /) -> Awaitable[T]: ...


# Which contract code a framework validation error carries, by the parameter's name.
_PARAMETER_CODES = {
    "zipcode": ErrorCode.ZIPCODE_NOT_VALID,
    "risk_factor": ErrorCode.RISK_FACTOR_NOT_VALID,
    "base_year": ErrorCode.WRONG_YEAR,
    "year": ErrorCode.WRONG_YEAR,
}


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """The contract's error answer: `{"error": {"code": ..., "message": ...}}`."""

    error: ErrorDetail


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    """Each dependency's state (`ok` or why not); `ready` when all are `ok`."""

    ready: bool
    checks: dict[str, str]


class BatchAccepted(BaseModel):
    job_id: str


def http_status(code: ErrorCode) -> int:
    """400 for refused input, 504 for TIMEOUT, 503 for the rest (backend, index)."""
    if code.is_refused_input:
        return 400
    if code is ErrorCode.TIMEOUT:
        return 504
    return 503


def error_response(
    code: ErrorCode,
    message: str,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The contract's error body with its HTTP status."""
    body = ZipscoreError(code, message).to_json()
    return JSONResponse(body, status_code=status or http_status(code), headers=headers)


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorBody} for status in statuses}


def thread_offload(executor: Executor) -> Offload:
    """Run each call on `executor` and await it: the loop stays free while it blocks."""

    async def offload(call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(executor, call)

    return offload


@dataclass(frozen=True)
class _Context:
    """What the routes share: the client, how blocking calls run, batches, limits."""

    settings: Settings
    client: Client
    run: Offload
    run_batch: Offload
    probe: Offload
    launcher: BatchLauncher
    gate: QuestionGate
    reader: AsyncCacheReader | None
    upload_dir: Path
    limit_bytes: int


def create_app(
    settings: Settings | None = None,
    *,
    client: Client | None = None,
    offload: Offload | None = None,
    launcher: BatchLauncher | None = None,
    cache_reader: AsyncCacheReader | None = None,
) -> FastAPI:
    """The gateway application; `uvicorn --factory producer.gateway:create_app` serves it.

    Cache hits are read with redis.asyncio (`cache_reader`, built from the settings unless
    a `client` is given); everything else runs through `client` on threads (`offload`).
    """
    settings = settings or get_settings()
    if client is None:
        client = Client(settings)
        cache_reader = cache_reader or AsyncCacheReader.from_settings(settings)
    calls = ThreadPoolExecutor(settings.gateway_threads, thread_name_prefix="gateway")
    batch_calls = ThreadPoolExecutor(4, thread_name_prefix="gateway-batch")
    probes = ThreadPoolExecutor(2, thread_name_prefix="gateway-probe")
    context = _Context(
        settings=settings,
        client=client,
        run=offload or thread_offload(calls),
        run_batch=offload or thread_offload(batch_calls),
        probe=thread_offload(probes),
        launcher=launcher or BatchLauncher(client, settings.gateway_max_batches),
        gate=QuestionGate(settings.gateway_threads, settings.gateway_max_waiting, client.timeout),
        reader=cache_reader,
        upload_dir=settings.gateway_upload_dir.resolve(),
        limit_bytes=settings.gateway_max_upload_mb * 1024 * 1024,
    )
    app = FastAPI(
        title="zipscore gateway",
        summary="Belgian zipcode risk factors, the health index and batch scoring over HTTP.",
        version="1",
        dependencies=[Depends(_no_repeated_parameters)],
    )
    _install_error_handlers(app, (settings.gateway_upload_dir.absolute(), context.upload_dir))
    _health_routes(app, context)
    _question_routes(app, context)
    _batch_routes(app, context)
    return app


def _no_repeated_parameters(request: Request) -> None:
    """Every route: a query parameter given twice is refused (400, the parameter's code),
    not resolved by taking one of the values (the framework takes the last)."""
    seen: set[str] = set()
    for name, _ in request.query_params.multi_items():
        if name in seen:
            code = _PARAMETER_CODES.get(name, ErrorCode.BAD_INPUT_FILE)
            raise ZipscoreError(code, f"query parameter {name[:40]!r} is given more than once")
        seen.add(name)


def _health_routes(app: FastAPI, context: _Context) -> None:
    @app.get("/healthz", response_model=Health, tags=["health"])
    async def healthz() -> Health:
        """Liveness: the process answers (nothing else is checked)."""
        return Health(status="ok")

    @app.get(
        "/readyz",
        response_model=Readiness,
        responses={503: {"model": Readiness}},
        tags=["health"],
    )
    async def readyz() -> JSONResponse:
        """Readiness: Redis answers PING, and a worker answers `health.ping` with its Postgres."""
        checks = await _readiness(context.client, context.settings, context.probe)
        ready = all(state == "ok" for state in checks.values())
        body = Readiness(ready=ready, checks=checks).model_dump()
        return JSONResponse(body, status_code=200 if ready else 503)


def _question_routes(app: FastAPI, context: _Context) -> None:
    client, run, reader, settings = context.client, context.run, context.reader, context.settings
    gate = context.gate

    @app.get(
        "/zipcodes/{zipcode}",
        response_model=LookupResult,
        responses=_errors(400, 503, 504),
        tags=["zipcodes"],
    )
    async def lookup(zipcode: str) -> LookupResult:
        """The risk factor of one zipcode (1000-9999); `exists: false` when not in the table."""
        arrived = time.monotonic()
        number = parse_zipcode(zipcode)  # pure: a refused input never leaves the loop
        if reader is not None and (cached := await reader.lookup(LOOKUP, number)) is not None:
            return LookupResult.model_validate(cached)
        return await gate.ask(lambda left: client.lookup(number, timeout=left), run, arrived)

    @app.get(
        "/zipcodes",
        response_model=RiskFactorListing,
        responses=_errors(400, 503, 504),
        tags=["zipcodes"],
    )
    async def by_risk_factor(
        risk_factor: Annotated[str, Query(description="A, B or C")],
    ) -> RiskFactorListing:
        """Every zipcode carrying a risk factor, ascending."""
        arrived = time.monotonic()
        factor = parse_risk_factor(risk_factor)
        if reader is not None and (cached := await reader.lookup(BY_RISK_FACTOR, factor)):
            return RiskFactorListing.model_validate(cached)
        return await gate.ask(
            lambda left: client.by_risk_factor(factor, timeout=left), run, arrived
        )

    @app.get(
        "/index",
        response_model=IndexAnswer,
        responses=_errors(400, 503, 504),
        tags=["index"],
    )
    async def health_index(
        base_year: Annotated[str | None, Query(description="1996, 2004, 2013 or 2025")] = None,
        year: Annotated[
            str | None, Query(description="The older name of base_year", deprecated=True)
        ] = None,
    ) -> IndexAnswer:
        """The latest health index for a base year (default 2004); 503 INDEX_UNAVAILABLE
        before the first successful refresh."""
        arrived = time.monotonic()
        if base_year is not None and year is not None and base_year != year:
            raise ZipscoreError(ErrorCode.WRONG_YEAR, "base_year and year disagree: give one")
        chosen = base_year if base_year is not None else year
        supported = settings.index_base_years
        number = parse_base_year(
            settings.index_default_base_year if chosen is None else chosen, supported
        )
        if reader is not None and (cached := await reader.index(number)) is not None:
            stale_after = settings.index_stale_after_seconds
            return IndexAnswer.model_validate(with_staleness(cached, stale_after, utcnow()))
        return await gate.ask(lambda left: client.index(number, timeout=left), run, arrived)


def _batch_routes(app: FastAPI, context: _Context) -> None:
    client, run, launcher = context.client, context.run_batch, context.launcher
    settings, upload_dir, limit_bytes = context.settings, context.upload_dir, context.limit_bytes

    @app.post(
        "/batches",
        status_code=202,
        response_model=BatchAccepted,
        responses=_errors(400, 413, 503, 504, 507),
        tags=["batches"],
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
        checked whole before any job exists (BAD_INPUT_FILE, 400).
        """
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit_bytes:
            return _too_large(settings)
        # The slot is taken before a byte of the body is read, so a refused upload is never
        # written. Once `start` returns, the job owns it (and gives it back when it ends).
        slot = launcher.reserve()
        try:
            source, output = await run(functools.partial(upload_paths, upload_dir))
        except BaseException as exc:
            slot.release()
            if (full := _storage_full(exc)) is not None:
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
            if started is None:  # else the job's thread has the slot, and gives it back
                slot.release()
            _remove(source, output)
            if isinstance(exc, UploadTooLarge):
                return _too_large(settings)
            if (full := _storage_full(exc)) is not None:
                return full
            if isinstance(exc, ZipscoreError):
                raise ZipscoreError(exc.code, _hide_paths(exc.message, source, output)) from None
            raise
        return JSONResponse(
            BatchAccepted(job_id=job).model_dump(),
            status_code=202,
            headers={"Location": f"/batches/{job}"},
        )

    @app.get(
        "/batches/{job_id}",
        response_model=JobProgress,
        responses=_errors(404, 503, 504),
        tags=["batches"],
    )
    async def batch_progress(job_id: str) -> JobProgress:
        """A job's progress and counts."""
        return (await _status(job_id, client, run)).progress()

    @app.post(
        "/batches/{job_id}/resume",
        status_code=202,
        response_model=BatchAccepted,
        responses=_errors(400, 404, 409, 503, 504),
        tags=["batches"],
    )
    async def resume_batch(job_id: str) -> JSONResponse:
        """Finish an interrupted job (e.g. after a gateway restart) in the background."""
        status = await _status(job_id, client, run)
        if status.state == "running":
            return error_response(
                ErrorCode.BACKEND_UNAVAILABLE, f"job {job_id} is running; nothing to resume", 409
            )
        if status.state != "done":
            _held(status, upload_dir)
            try:
                started = await run(functools.partial(launcher.resume, job_id))
                await asyncio.wrap_future(started)
            except ZipscoreError as exc:  # e.g. its upload changed: named by its path
                paths = (Path(status.input), Path(status.output))
                raise ZipscoreError(exc.code, _hide_paths(exc.message, *paths)) from None
        return JSONResponse(
            BatchAccepted(job_id=job_id).model_dump(),
            status_code=202,
            headers={"Location": f"/batches/{job_id}"},
        )

    @app.get(
        "/batches/{job_id}/result",
        response_class=FileResponse,
        responses={
            200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
            **_errors(404, 409, 503, 504),
        },
        tags=["batches"],
    )
    async def batch_result(job_id: str) -> FileResponse:
        """The scored CSV, streamed; 409 until the job is done."""
        status = await _status(job_id, client, run)
        if status.state != "done":
            raise _NotFinished(status)
        return FileResponse(
            _held(status, upload_dir), media_type="text/csv", filename=f"{job_id}.csv"
        )

    @app.exception_handler(_NotFinished)
    async def not_finished(_: Request, exc: _NotFinished) -> JSONResponse:
        status = exc.status
        return error_response(
            ErrorCode.BACKEND_UNAVAILABLE,
            f"job {status.job_id} is {status.state} ({status.chunks_done}/{status.chunks_total}"
            " chunks): its result is there once GET /batches/{id} says done",
            409,
        )

    @app.exception_handler(_UnknownJob)
    async def unknown_job(_: Request, exc: _UnknownJob) -> JSONResponse:
        return error_response(ErrorCode.BAD_INPUT_FILE, str(exc), 404)


class _NotFinished(Exception):
    def __init__(self, status: JobStatus) -> None:
        super().__init__(status.job_id)
        self.status = status


class _UnknownJob(Exception):
    """404: no such job (or not one whose files this gateway holds)."""


async def _status(job_id: str, client: Client, run: Offload) -> JobStatus:
    if not JOB_ID.match(job_id):
        raise _UnknownJob(f"no batch job {job_id[:40]!r}")
    try:
        status: JobStatus = await run(functools.partial(client.batch_status, job_id))
    except ZipscoreError as exc:
        # batch_status refuses one thing only: a job id it does not know.
        if exc.code is ErrorCode.BAD_INPUT_FILE:
            raise _UnknownJob(exc.message) from None
        raise
    return status


def _held(status: JobStatus, upload_dir: Path) -> Path:
    """The job's output, when it lies in this gateway's upload directory (never elsewhere)."""
    output = Path(status.output)
    if output.parent != upload_dir or not output.is_file():
        raise _UnknownJob(f"the files of job {status.job_id} are not held by this gateway")
    return output


def _remove(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _hide_paths(message: str, *places: Path) -> str:
    """Refusals name the file; a client sees `upload`, never the server's paths: each of
    `places` (a file, or a directory and anything under it) becomes `upload`."""
    for place in places:
        for spelling in {str(place).rstrip("/"), str(place.resolve()).rstrip("/")}:
            if not spelling or spelling == ".":  # `/` itself: nothing to hide but all
                continue
            pattern = re.escape(spelling) + r"(?:/[^\s'\":,;]*)?"
            message = re.sub(pattern, "upload", message)
    return message


def _storage_full(exc: BaseException) -> JSONResponse | None:
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


def _too_large(settings: Settings) -> JSONResponse:
    return error_response(
        ErrorCode.BAD_INPUT_FILE,
        f"the upload is over the limit of {settings.gateway_max_upload_mb} MB",
        413,
    )


async def _readiness(client: Client, settings: Settings, probe: Offload) -> dict[str, str]:
    """Redis (broker and cache) and a worker with its Postgres, checked concurrently."""
    from worker.cache import redis_client
    from worker.redis_health import memory_problems

    def ping_redis() -> str:
        problems: list[str] = []
        try:
            for url in {settings.broker, settings.cache}:
                client = redis_client(url)
                client.ping()
                # An evicting or nearly full Redis is not ready: it may drop or refuse work.
                problems += memory_problems(client)
        except redis.RedisError as exc:
            return f"unreachable ({type(exc).__name__})"
        return "; ".join(dict.fromkeys(problems)) or "ok"

    def ping_worker() -> dict[str, str]:
        try:
            answer = client.call("health.ping", timeout=settings.gateway_ready_timeout_seconds)
        except ZipscoreError as exc:
            return {"worker": f"{exc.code.value}: {exc.message}", "postgres": "unknown"}
        return {"worker": str(answer.get("worker")), "postgres": str(answer.get("postgres"))}

    redis_state, worker_states = await asyncio.gather(probe(ping_redis), probe(ping_worker))
    return {"redis": redis_state, **worker_states}


def _install_error_handlers(app: FastAPI, upload_dirs: tuple[Path, ...]) -> None:
    """Every error leaves in the contract's body; no traceback ever reaches a client, nor
    a path in `upload_dirs` (whatever part of the client or the job put it in a message)."""

    @app.exception_handler(ZipscoreError)
    async def contract_error(_: Request, exc: ZipscoreError) -> JSONResponse:
        return error_response(exc.code, _hide_paths(exc.message, *upload_dirs))

    @app.exception_handler(Saturated)
    async def saturated(_: Request, exc: Saturated) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)}
        return error_response(ErrorCode.BACKEND_UNAVAILABLE, exc.message, 503, headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = exc.errors()
        first = problems[0] if problems else {}
        location = [str(part) for part in first.get("loc", ()) if part not in {"query", "path"}]
        name = location[-1] if location else ""
        code = _PARAMETER_CODES.get(name, ErrorCode.BAD_INPUT_FILE)
        # The parameter and what is wrong with it; never the input itself.
        message = f"{'.'.join(location) or 'request'}: {first.get('msg', 'not valid')}"
        return error_response(code, message, 400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(
            ErrorCode.BAD_INPUT_FILE, str(exc.detail), exc.status_code, exc.headers
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception(
            "unexpected %s on %s %s", type(exc).__name__, request.method, request.url.path
        )
        return error_response(
            ErrorCode.BACKEND_UNAVAILABLE, "unexpected error; see the gateway log", 500
        )


def serve(host: str = "127.0.0.1", port: int = 5000) -> None:
    """Run the gateway with uvicorn in this process until interrupted."""
    import uvicorn

    from worker import log_setup

    log_setup.configure(logging.INFO)
    uvicorn.run(
        "producer.gateway:create_app",
        factory=True,
        host=host,
        port=port,
        log_config=None,  # zipscore's own logging (ZIPSCORE_LOG_FORMAT)
        timeout_graceful_shutdown=10,
    )
