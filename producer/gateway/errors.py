"""The contract's errors over HTTP: each code's status, the error body, and the handlers
that make every failure (the contract's, the framework's, an unexpected one) leave in it.

    error_response(ErrorCode.TIMEOUT, "no answer")   # 504 {"error": {"code": ..., ...}}
    install_error_handlers(app, upload_dirs)
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from producer.gateway.limits import Refusal, Saturated
from worker.contract.errors import ErrorCode, ZipscoreError

logger = logging.getLogger(__name__)

# Which contract code a framework validation error carries, by the parameter's name.
PARAMETER_CODES = {
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
# The framework's own refusals: an unknown route, a method a route does not have.
_FRAMEWORK_CODES = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED}


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


def hide_paths(message: str, *places: Path) -> str:
    """Refusals name the file; a client sees `upload`, never the server's paths: each of
    `places` (a file, or a directory and anything under it) becomes `upload`."""
    for place in places:
        for spelling in {str(place).rstrip("/"), str(place.resolve()).rstrip("/")}:
            if not spelling or spelling == ".":  # `/` itself: nothing to hide but all
                continue
            pattern = re.escape(spelling) + r"(?:/[^\s'\":,;]*)?"
            message = re.sub(pattern, "upload", message)
    return message


def no_repeated_parameters(request: Request) -> None:
    """Every route: a query parameter given twice is refused (400, the parameter's code),
    not resolved by taking one of the values (the framework takes the last)."""
    seen: set[str] = set()
    for name, _ in request.query_params.multi_items():
        if name in seen:
            code = PARAMETER_CODES.get(name, ErrorCode.BAD_INPUT_FILE)
            raise ZipscoreError(code, f"query parameter {name[:40]!r} is given more than once")
        seen.add(name)


def install_error_handlers(app: FastAPI, upload_dirs: tuple[Path, ...]) -> None:
    """Every error leaves in the contract's body; no traceback ever reaches a client, nor
    a path in `upload_dirs` (whatever part of the client or the job put it in a message)."""

    @app.exception_handler(ZipscoreError)
    async def contract_error(_: Request, exc: ZipscoreError) -> JSONResponse:
        headers = exc.headers if isinstance(exc, Refusal) else None
        return error_response(exc.code, hide_paths(exc.message, *upload_dirs), headers=headers)

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
        code = PARAMETER_CODES.get(name, ErrorCode.BAD_INPUT_FILE)
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
