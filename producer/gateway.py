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

With API keys configured (`producer.gateway_auth`) every route but `/healthz`, `/readyz`
and the docs needs one, and each key may start `ZIPSCORE_GATEWAY_BATCHES_PER_MINUTE`
batches a minute. The OpenAPI document lists, for each operation, exactly the statuses it
can answer; `/docs` and `/redoc` load their scripts from this server (no CDN). HEAD is
answered on every GET route, as GET without the body.
"""

from __future__ import annotations

import asyncio
import contextvars
import errno
import functools
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Protocol, TypeVar

import redis
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.params import Depends as Dependency
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from producer import gateway_tracing, metrics, metrics_route
from producer.batch import JOB_ID, JobProgress, JobStatus
from producer.client import Client, IndexAnswer, LookupResult, RiskFactorListing
from producer.gateway_auth import ApiKeys
from producer.gateway_cache import AsyncCacheReader
from producer.gateway_jobs import (
    STORAGE_FULL,
    BatchLauncher,
    Slot,
    UploadTooLarge,
    receive_upload,
    upload_paths,
)
from producer.gateway_limits import BatchRateLimit, QuestionGate, Refusal, Saturated
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


_STATUSES = {
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.CONFLICT: 409,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.TIMEOUT: 504,
}
# Seconds a 503 asks a client to wait (`Retry-After`): every 503 carries one. A worker or
# Redis coming back is a matter of seconds; the index needs a refresh to run (and retry).
RETRY_AFTER = {ErrorCode.INDEX_UNAVAILABLE: 60}
RETRY_AFTER_DEFAULT = 5


def http_status(code: ErrorCode) -> int:
    """The code's own status (401, 404, 405, 409, 429, 504), 400 for other refused input,
    503 for the rest (backend, index)."""
    if code in _STATUSES:
        return _STATUSES[code]
    return 400 if code.is_refused_input else 503


def error_response(
    code: ErrorCode,
    message: str,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The contract's error body with its HTTP status (and `Retry-After` on every 503)."""
    body = ZipscoreError(code, message).to_json()
    status = status or http_status(code)
    headers = dict(headers or {})
    if status == 503:
        headers.setdefault("Retry-After", str(RETRY_AFTER.get(code, RETRY_AFTER_DEFAULT)))
    return JSONResponse(body, status_code=status, headers=headers)


_RETRY_HEADER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "schema": {"type": "integer"},
    }
}
# What each error status means, with an example body.
_ERROR_DOCS: dict[int, tuple[str, ErrorCode, str, dict[str, Any]]] = {
    400: (
        "Refused input (the parameter's code), a query parameter given twice included",
        ErrorCode.BAD_INPUT_FILE,
        "query parameter 'x' is given more than once",
        {},
    ),
    401: (
        "No valid API key (sent only when keys are configured)",
        ErrorCode.UNAUTHORIZED,
        "an API key is needed: send Authorization: Bearer <key>",
        {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}},
    ),
    404: (
        "No such batch job, or not one whose files this gateway holds",
        ErrorCode.NOT_FOUND,
        "no batch job 0123456789abcdef (unknown, or expired after 7 days)",
        {},
    ),
    409: (
        "The job is not in a state for this (still running, or interrupted)",
        ErrorCode.CONFLICT,
        "job 0123456789abcdef is running; nothing to resume",
        {},
    ),
    413: (
        "The upload is over ZIPSCORE_GATEWAY_MAX_UPLOAD_MB",
        ErrorCode.BAD_INPUT_FILE,
        "the upload is over the limit of 100 MB",
        {},
    ),
    429: (
        "This API key started too many batches (ZIPSCORE_GATEWAY_BATCHES_PER_MINUTE)",
        ErrorCode.RATE_LIMITED,
        "this API key is over its 10 batches a minute; retry in 6 s",
        _RETRY_HEADER,
    ),
    503: (
        "Redis, the queue or a worker unavailable, the index not refreshed yet, or this"
        " gateway busy (its questions or its batch slots): retry after Retry-After",
        ErrorCode.BACKEND_UNAVAILABLE,
        "Redis is unreachable (ConnectionError)",
        _RETRY_HEADER,
    ),
    504: (
        "No worker answered within ZIPSCORE_LOOKUP_TIMEOUT",
        ErrorCode.TIMEOUT,
        "no answer from a worker within 10 s",
        {},
    ),
    507: (
        "No space left to store the upload",
        ErrorCode.BACKEND_UNAVAILABLE,
        "no space left to store the upload (ENOSPC); retry once space is freed",
        {},
    ),
}


def _errors(
    *statuses: int, example: tuple[ErrorCode, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for error statuses: the contract's body, an example (`example`
    replaces the 400's), the headers sent with it."""
    documented: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        description, code, message, headers = _ERROR_DOCS[status]
        if status == 400 and example is not None:
            code, message = example
        body = {"error": {"code": code.value, "message": message}}
        documented[status] = {
            "model": ErrorBody,
            "description": description,
            "content": {"application/json": {"example": body}},
            **({"headers": headers} if headers else {}),
        }
    return documented


def _success(example: Any, description: str = "Success") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"example": example}}}


def thread_offload(executor: Executor) -> Offload:
    """Run each call on `executor` and await it: the loop stays free while it blocks."""

    async def offload(call: Callable[[], T]) -> T:
        # In the request's context (its trace span), as asyncio.to_thread does.
        in_context = functools.partial(contextvars.copy_context().run, call)
        return await asyncio.get_running_loop().run_in_executor(executor, in_context)

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
    keys: ApiKeys
    caller: Callable[..., Awaitable[str]]  # the caller's key id ("" when keys are off)
    rate: BatchRateLimit

    @property
    def guarded(self) -> list[Dependency]:
        """A route behind the API keys: the key checked first, then the query."""
        return [Depends(self.caller), Depends(_no_repeated_parameters)]

    @property
    def open(self) -> list[Dependency]:
        """A route anyone may call (liveness, readiness)."""
        return [Depends(_no_repeated_parameters)]

    @property
    def auth_errors(self) -> tuple[int, ...]:
        """401 where a key is needed, documented only when keys are configured."""
        return (401,) if self.keys else ()


async def _anyone() -> str:
    return ""


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
    keys = ApiKeys(settings.gateway_api_keys)
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
        keys=keys,
        caller=keys.dependency() if keys else _anyone,
        rate=BatchRateLimit(settings.gateway_batches_per_minute),
    )
    app = FastAPI(
        title="zipscore gateway",
        summary="Belgian zipcode risk factors, the health index and batch scoring over HTTP.",
        version="1",
        docs_url=None,  # served from this package's files below, not from a CDN
        redoc_url=None,
    )
    app.add_middleware(HeadAsGet)
    gateway_tracing.install(app)  # request spans, only when traces are on
    _install_error_handlers(app, (settings.gateway_upload_dir.absolute(), context.upload_dir))
    _health_routes(app, context)
    _question_routes(app, context)
    _batch_routes(app, context)
    metrics_route.install(app, settings, context.guarded)
    _docs_routes(app)
    _openapi_without_422(app)
    return app


def _openapi_without_422(app: FastAPI) -> None:
    """The OpenAPI document without the framework's 422, which this gateway never sends
    (validation errors are 400 with the contract's body), nor its schemas for it. FastAPI's
    documented way: replace `app.openapi`, caching in `app.openapi_schema`."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            for item in document.get("paths", {}).values():
                for operation in item.values():
                    operation.get("responses", {}).pop("422", None)
            schemas = document.get("components", {}).get("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


class HeadAsGet:
    """HEAD on any route is answered as its GET, without the body (RFC 9110: the same
    status and headers). FastAPI registers GET routes for GET only (405 on HEAD)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        # A copy: the server reads the original scope's method to drop the body itself.
        await self.app({**scope, "method": "GET"}, receive, headers_only)


DOCS_ASSETS = "/docs/assets"
# The docs pages may load nothing from another host, whatever their scripts ask for (ReDoc
# asks cdn.redoc.ly for its logo): offline they lose nothing, online they tell no one.
# Inline script and style: FastAPI's pages start Swagger UI inline; ReDoc uses blob workers.
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'"
)


def _docs_routes(app: FastAPI) -> None:
    """/docs (Swagger UI) and /redoc, with their scripts and styles served from the
    fastapi-offline package's copy of them: the pages work without the internet."""
    static = resources.files("fastapi_offline") / "static"
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(static)), name="docs-assets")
    title = f"{app.title} - docs"

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "") + DOCS_ASSETS
        page = get_swagger_ui_html(
            openapi_url=request.scope.get("root_path", "") + str(app.openapi_url),
            title=title,
            swagger_js_url=f"{root}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/swagger-ui.css",
            swagger_favicon_url=f"{root}/favicon.png",
            # No badge from the public validator: it would send it this schema's URL.
            swagger_ui_parameters={"validatorUrl": None},
        )
        page.headers["Content-Security-Policy"] = DOCS_POLICY
        return page

    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "") + DOCS_ASSETS
        page = get_redoc_html(
            openapi_url=request.scope.get("root_path", "") + str(app.openapi_url),
            title=title,
            redoc_js_url=f"{root}/redoc.standalone.js",
            redoc_favicon_url=f"{root}/favicon.png",
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = DOCS_POLICY
        return page

    # Plain routes, as FastAPI adds its own docs: outside the schema, open to anyone.
    app.add_route("/docs", swagger_ui, include_in_schema=False)
    app.add_route("/redoc", redoc, include_in_schema=False)


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
    @app.get(
        "/healthz",
        response_model=Health,
        responses={200: _success({"status": "ok"}), **_errors(400)},
        tags=["health"],
        operation_id="liveness",
        summary="Liveness",
        dependencies=context.open,
    )
    async def healthz() -> Health:
        """Liveness: the process answers (nothing else is checked)."""
        return Health(status="ok")

    ready_example = {"ready": True, "checks": {"redis": "ok", "worker": "ok", "postgres": "ok"}}
    not_ready = {
        "ready": False,
        "checks": {"redis": "ok", "worker": "TIMEOUT: ...", "postgres": "unknown"},
    }

    @app.get(
        "/readyz",
        response_model=Readiness,
        responses={
            200: _success(ready_example),
            **_errors(400),
            503: {
                "model": Readiness,
                "description": "Not ready: the checks say which dependency is not ok",
                "content": {"application/json": {"example": not_ready}},
                "headers": _RETRY_HEADER,
            },
        },
        tags=["health"],
        operation_id="readiness",
        summary="Readiness",
        dependencies=context.open,
    )
    async def readyz() -> JSONResponse:
        """Readiness: Redis answers PING, and a worker answers `health.ping` with its Postgres."""
        checks = await _readiness(context.client, context.settings, context.probe)
        ready = all(state == "ok" for state in checks.values())
        body = Readiness(ready=ready, checks=checks).model_dump()
        retry = {} if ready else {"Retry-After": str(RETRY_AFTER_DEFAULT)}
        return JSONResponse(body, status_code=200 if ready else 503, headers=retry)


def _question_routes(app: FastAPI, context: _Context) -> None:
    client, run, reader, settings = context.client, context.run, context.reader, context.settings
    gate = context.gate

    @app.get(
        "/zipcodes/{zipcode}",
        response_model=LookupResult,
        responses={
            200: _success({"zipcode": 9000, "risk_factor": "B", "exists": True}),
            **_errors(
                400,
                *context.auth_errors,
                503,
                504,
                example=(ErrorCode.ZIPCODE_NOT_VALID, "zipcode 999 is outside 1000-9999"),
            ),
        },
        tags=["zipcodes"],
        operation_id="lookupZipcode",
        summary="Risk factor of one zipcode",
        dependencies=context.guarded,
    )
    async def lookup(zipcode: str) -> LookupResult:
        """The risk factor of one zipcode (1000-9999); `exists: false` when not in the table."""
        arrived = time.monotonic()
        with metrics.asked("lookup") as asked:  # the client counts what it answers
            number = parse_zipcode(zipcode)  # pure: a refused input never leaves the loop
            if reader is not None and (cached := await reader.lookup(LOOKUP, number)):
                asked.source = "cache"
                return asked.answered(LookupResult.model_validate(cached))
            asked.passed_on()
        return await gate.ask(lambda left: client.lookup(number, timeout=left), run, arrived)

    @app.get(
        "/zipcodes",
        response_model=RiskFactorListing,
        responses={
            200: _success({"risk_factor": "A", "count": 3, "zipcodes": [9170, 9171, 9172]}),
            **_errors(
                400,
                *context.auth_errors,
                503,
                504,
                example=(
                    ErrorCode.RISK_FACTOR_NOT_VALID,
                    "risk factor must be one of A, B, C, not 'Z'",
                ),
            ),
        },
        tags=["zipcodes"],
        operation_id="listZipcodes",
        summary="Zipcodes with a risk factor",
        dependencies=context.guarded,
    )
    async def by_risk_factor(
        risk_factor: Annotated[str, Query(description="A, B or C")],
    ) -> RiskFactorListing:
        """Every zipcode carrying a risk factor, ascending."""
        arrived = time.monotonic()
        with metrics.asked("risk_factor") as asked:
            factor = parse_risk_factor(risk_factor)
            if reader is not None and (cached := await reader.lookup(BY_RISK_FACTOR, factor)):
                asked.source = "cache"
                return asked.answered(RiskFactorListing.model_validate(cached))
            asked.passed_on()
        return await gate.ask(
            lambda left: client.by_risk_factor(factor, timeout=left), run, arrived
        )

    @app.get(
        "/index",
        response_model=IndexAnswer,
        responses={
            200: _success(
                {
                    "base_year": 2004,
                    "index": 135.61,
                    "period": "2021-09",
                    "fetched_at": "2021-10-01T07:15:02Z",
                    "stale": False,
                }
            ),
            **_errors(
                400,
                *context.auth_errors,
                503,
                504,
                example=(
                    ErrorCode.WRONG_YEAR,
                    "base year must be one of 1996, 2004, 2013, 2025, not '1999'",
                ),
            ),
        },
        tags=["index"],
        operation_id="latestIndex",
        summary="Latest health index",
        dependencies=context.guarded,
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
        with metrics.asked("index") as asked:
            number = parse_base_year(
                settings.index_default_base_year if chosen is None else chosen, supported
            )
            if reader is not None and (cached := await reader.index(number)) is not None:
                asked.source = "cache"
                stale_after = settings.index_stale_after_seconds
                entry = with_staleness(cached, stale_after, utcnow())
                return asked.answered(IndexAnswer.model_validate(entry))
            asked.passed_on()
        return await gate.ask(lambda left: client.index(number, timeout=left), run, arrived)


_ACCEPTED = {
    **_success({"job_id": "3f2a9c01d4e5b6a7"}, "Accepted: the job runs in the background"),
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


def _batch_routes(app: FastAPI, context: _Context) -> None:
    client, run, launcher = context.client, context.run_batch, context.launcher
    settings, upload_dir, limit_bytes = context.settings, context.upload_dir, context.limit_bytes

    @app.post(
        "/batches",
        status_code=202,
        response_model=BatchAccepted,
        responses={
            202: _ACCEPTED,
            **_errors(
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
            return _too_large(settings)
        if key_id := getattr(request.state, "key_id", ""):  # set by the key check
            context.rate.take(key_id)
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
            _undo_start(started, slot, source, output)
            if isinstance(exc, UploadTooLarge):
                return _too_large(settings)
            if (full := _storage_full(exc)) is not None:
                return full
            if isinstance(exc, ZipscoreError):
                raise _scrubbed(exc, source, output) from None
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
            200: _success(_PROGRESS_EXAMPLE),
            **_errors(400, *context.auth_errors, 404, 503),
        },
        tags=["batches"],
        operation_id="getBatch",
        summary="A batch job's progress",
        dependencies=context.guarded,
    )
    async def batch_progress(job_id: str) -> JobProgress:
        """A job's progress and counts."""
        return (await _status(job_id, client, run)).progress()

    @app.post(
        "/batches/{job_id}/resume",
        status_code=202,
        response_model=BatchAccepted,
        responses={
            202: _ACCEPTED,
            **_errors(400, *context.auth_errors, 404, 409, 503, 504),
        },
        tags=["batches"],
        operation_id="resumeBatch",
        summary="Finish an interrupted batch job",
        dependencies=context.guarded,
    )
    async def resume_batch(job_id: str) -> JSONResponse:
        """Finish an interrupted job (e.g. after a gateway restart) in the background."""
        status = await _status(job_id, client, run)
        if status.state == "running":
            return error_response(ErrorCode.CONFLICT, f"job {job_id} is running; nothing to resume")
        if status.state != "done":
            _resumable_here(status, upload_dir)
            try:
                started = await run(functools.partial(launcher.resume, job_id))
                await asyncio.wrap_future(started)
            except ZipscoreError as exc:  # e.g. its upload changed: named by its path
                raise _scrubbed(exc, Path(status.input), Path(status.output)) from None
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
            **_errors(400, *context.auth_errors, 404, 409, 503),
        },
        tags=["batches"],
        operation_id="getBatchResult",
        summary="A batch job's scored CSV",
        dependencies=context.guarded,
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
            ErrorCode.CONFLICT,
            f"job {status.job_id} is {status.state} ({status.chunks_done}/{status.chunks_total}"
            " chunks): its result is there once GET /batches/{id} says done",
        )

    @app.exception_handler(_UnknownJob)
    async def unknown_job(_: Request, exc: _UnknownJob) -> JSONResponse:
        return error_response(ErrorCode.NOT_FOUND, str(exc))


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
        if exc.code is ErrorCode.NOT_FOUND:
            raise _UnknownJob(exc.message) from None
        raise
    return status


def _held(status: JobStatus, upload_dir: Path) -> Path:
    """The job's finished output, when it lies in this gateway's upload directory."""
    output = Path(status.output)
    if output.parent != upload_dir or not output.is_file():
        raise _UnknownJob(f"the files of job {status.job_id} are not held by this gateway")
    return output


def _undo_start(started: Future[str] | None, slot: Slot, *files: Path) -> None:
    """Clean up after an upload whose job did not (or may not yet) start."""
    if started is None:  # else the job's thread has the slot, and gives it back
        slot.release()
    # A job that may be running owns its upload (the client went away meanwhile): removing
    # it would leave that job an input it can no longer be resumed from.
    if started is None or started.done():
        _remove(*files)


def _resumable_here(status: JobStatus, upload_dir: Path) -> None:
    """Refuse to resume a job whose upload this gateway does not hold. Its output need not
    exist: an unfinished job writes a partial file beside it, renamed into place at the end."""
    source, output = Path(status.input), Path(status.output)
    if output.parent != upload_dir or source.parent != upload_dir or not source.is_file():
        raise _UnknownJob(f"the files of job {status.job_id} are not held by this gateway")


def _scrubbed(exc: ZipscoreError, *places: Path) -> ZipscoreError:
    """`exc` with `places` hidden from its message (and its HTTP headers kept)."""
    message = _hide_paths(exc.message, *places)
    if isinstance(exc, Refusal):
        return Refusal(exc.code, message, exc.headers)
    return ZipscoreError(exc.code, message)


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


# The framework's own refusals: an unknown route, a method a route does not have.
_FRAMEWORK_CODES = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED}


def _install_error_handlers(app: FastAPI, upload_dirs: tuple[Path, ...]) -> None:
    """Every error leaves in the contract's body; no traceback ever reaches a client, nor
    a path in `upload_dirs` (whatever part of the client or the job put it in a message)."""

    @app.exception_handler(ZipscoreError)
    async def contract_error(_: Request, exc: ZipscoreError) -> JSONResponse:
        headers = exc.headers if isinstance(exc, Refusal) else None
        return error_response(exc.code, _hide_paths(exc.message, *upload_dirs), headers=headers)

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
        headers = dict(exc.headers or {})
        allowed = [method.strip() for method in headers.get("Allow", "").split(",")]
        if "GET" in allowed and "HEAD" not in allowed:  # HeadAsGet answers HEAD too
            headers["Allow"] = ", ".join([*allowed, "HEAD"])
        code = _FRAMEWORK_CODES.get(exc.status_code, ErrorCode.BAD_INPUT_FILE)
        return error_response(code, str(exc.detail), exc.status_code, headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception(
            "unexpected %s on %s %s", type(exc).__name__, request.method, request.url.path
        )
        return error_response(
            ErrorCode.BACKEND_UNAVAILABLE, "unexpected error; see the gateway log", 500
        )


def serve(host: str = "127.0.0.1", port: int = 5000) -> None:
    """Run the gateway with uvicorn in this process until interrupted.

    Raises:
        SettingsError: before anything binds, when `host` is beyond loopback and no API
            keys are configured (or the settings are not valid).
    """
    import uvicorn

    from producer.gateway_auth import refuse_exposure
    from worker import log_setup

    refuse_exposure(host, port, ApiKeys(get_settings().gateway_api_keys))
    log_setup.configure(logging.INFO)
    uvicorn.run(
        "producer.gateway:create_app",
        factory=True,
        host=host,
        port=port,
        log_config=None,  # zipscore's own logging (ZIPSCORE_LOG_FORMAT)
        timeout_graceful_shutdown=10,
    )
