"""The OpenAPI document: what each operation answers, with an example of each status.

    responses={200: success({"status": "ok"}), **documented_errors(400, 503)}

Each operation lists exactly the statuses it can answer; `drop_422` takes out the
framework's 422, which this gateway never sends (validation errors are 400).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from producer.gateway.errors import ErrorBody
from worker.contract.errors import ErrorCode

RETRY_HEADER = {
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
        RETRY_HEADER,
    ),
    503: (
        "Redis, the queue or a worker unavailable, the index not refreshed yet, or this"
        " gateway busy (its questions or its batch slots): retry after Retry-After",
        ErrorCode.BACKEND_UNAVAILABLE,
        "Redis is unreachable (ConnectionError)",
        RETRY_HEADER,
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


def documented_errors(
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


def success(example: Any, description: str = "Success") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"example": example}}}


def drop_422(app: FastAPI) -> None:
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
