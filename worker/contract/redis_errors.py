"""Telling Redis's own refusals apart, however Celery, kombu or billiard wrapped them."""

from __future__ import annotations

from collections.abc import Iterator

import redis


def causes(exc: BaseException | None) -> Iterator[BaseException]:
    """`exc`, the exceptions it wraps (Celery's, billiard's) and its causes and contexts."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        inner = getattr(exc, "exc", None)  # billiard's ExceptionWithTraceback
        if isinstance(inner, BaseException):
            exc = inner
            continue
        exc = exc.__cause__ or exc.__context__


def is_out_of_memory(exc: BaseException | None) -> bool:
    """Whether Redis refused a command for lack of memory, however the error was wrapped."""
    for cause in causes(exc):
        if isinstance(cause, redis.OutOfMemoryError):
            return True
        # A pool process's exception reaches the worker pickled by Celery, maybe rebuilt
        # under another class: the reply text is Redis's own.
        if "used memory > 'maxmemory'" in str(cause) or str(cause).startswith("OOM "):
            return True
    return False
