"""The contract's error codes, shared by the worker, the client, the CLI and the gateway."""

from __future__ import annotations

import reprlib
from enum import StrEnum
from typing import Any

MAX_ECHO = 40  # characters of a refused value quoted in a message (the README's promise)
MAX_MESSAGE = 2000  # characters of any error message: the backstop behind every echo
_REPR = reprlib.Repr()  # containers and other objects: bounded by reprlib's own limits
_REPR.maxlevel, _REPR.maxother, _REPR.maxlong = 2, MAX_ECHO, MAX_ECHO


def echo(value: object) -> str:
    """How a refused value is quoted in an error message: its `repr`, at most MAX_ECHO
    characters, built without ever copying a huge value whole."""
    if isinstance(value, str | bytes | bytearray):
        text = repr(value[: MAX_ECHO + 1])  # one more than fits: enough to show it is cut
    else:
        try:
            text = _REPR.repr(value)
        except Exception:  # a repr that fails (an int over 4,300 digits, a broken object)
            text = f"<{type(value).__name__}>"
    return text if len(text) <= MAX_ECHO else text[: MAX_ECHO - 3] + "..."


def capped(message: str) -> str:
    """`message` cut to MAX_MESSAGE characters."""
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."


class ErrorCode(StrEnum):
    ZIPCODE_NOT_VALID = "ZIPCODE_NOT_VALID"
    RISK_FACTOR_NOT_VALID = "RISK_FACTOR_NOT_VALID"
    WRONG_YEAR = "WRONG_YEAR"
    INDEX_UNAVAILABLE = "INDEX_UNAVAILABLE"
    BAD_INPUT_FILE = "BAD_INPUT_FILE"
    TIMEOUT = "TIMEOUT"
    BACKEND_UNAVAILABLE = "BACKEND_UNAVAILABLE"
    # A command line that cannot be parsed: an unknown command or option, a missing argument.
    USAGE = "USAGE"
    # What was named does not exist: a batch job (CLI and HTTP), an HTTP route.
    NOT_FOUND = "NOT_FOUND"
    # HTTP only: a method the route does not have, a job not in the state asked of it, no
    # valid API key, too many batches started with one key.
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    CONFLICT = "CONFLICT"
    UNAUTHORIZED = "UNAUTHORIZED"
    RATE_LIMITED = "RATE_LIMITED"

    @property
    def is_refused_input(self) -> bool:
        """True when the caller's input was refused (CLI exit status 2; HTTP 400, or the
        gateway's more precise 401/404/405). CONFLICT and RATE_LIMITED are not: the same
        request can succeed later, unchanged."""
        return self in _REFUSED_INPUT


_REFUSED_INPUT = frozenset(
    {
        ErrorCode.ZIPCODE_NOT_VALID,
        ErrorCode.RISK_FACTOR_NOT_VALID,
        ErrorCode.WRONG_YEAR,
        ErrorCode.BAD_INPUT_FILE,
        ErrorCode.USAGE,
        ErrorCode.NOT_FOUND,
        ErrorCode.METHOD_NOT_ALLOWED,
        ErrorCode.UNAUTHORIZED,
    }
)


class ZipscoreError(Exception):
    """An answer that is a contract error: a code and a one-line human message."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        message = capped(message)
        super().__init__(message)
        self.code = code
        self.message = message

    def to_json(self) -> dict[str, Any]:
        return {"error": {"code": self.code.value, "message": self.message}}

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> ZipscoreError:
        """Rebuild an error from a task's JSON envelope (unknown codes are a backend fault)."""
        body = payload.get("error") or {}
        try:
            code = ErrorCode(str(body.get("code")))
        except ValueError:
            code = ErrorCode.BACKEND_UNAVAILABLE
        return cls(code, str(body.get("message", "the worker answered with an error")))
