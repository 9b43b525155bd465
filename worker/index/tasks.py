"""Celery tasks of the health index, on the `index` queue: `index.refresh`, `index.latest`.

    celery -A worker worker -Q lookups,index       # a worker that answers them
    celery -A worker beat                          # runs `index.refresh` on its schedule

A scheduled refresh (beat's, `retry` true) that meets a transient fault (network, timeout,
5xx, 429, Postgres or Redis down) is retried by Celery with exponential backoff and jitter, a
bounded number of times, one line in the log each; then it fails (one ERROR line, FAILURE in
Flower) and the previous values stay in service. A refused document or a 4xx is not retried:
the same request would get the same answer. A refresh someone waits for (`zipscore index
refresh` sends `retry=false`) tries the source once and answers the contract error with the
cause, so it fails within the source's timeout and leaves nothing retrying behind. A message
whose `if_empty` or `retry` is not a boolean is answered INDEX_UNAVAILABLE before anything
is fetched.
"""

from __future__ import annotations

import logging
from typing import Any

import redis

from worker import runtime
from worker.celery_app import app
from worker.contract.errors import ErrorCode, ZipscoreError, capped
from worker.contract.settings import Settings, get_settings
from worker.contract.validation import parse_if_empty, parse_refresh_flag
from worker.index import service as index
from worker.index.document import DocumentRefused
from worker.index.statbel import SourceRefused, SourceUnavailable
from worker.task_guard import RETRY, TRANSIENT, GuardedTask, answer, guarded

logger = logging.getLogger(__name__)
# How a refresh fails in normal operation (the source or a backend is down, the document is
# refused): expected, so said in one line, never with a traceback.
FAILURES = (SourceUnavailable, SourceRefused, DocumentRefused, *TRANSIENT)


def why(exc: BaseException) -> str:
    """One line on why a refresh failed, fit for a log and an answer (no DSN, no URL)."""
    if isinstance(exc, SourceUnavailable | SourceRefused):
        return capped(str(exc))
    if isinstance(exc, DocumentRefused):
        return capped(f"the document was refused: {exc}")
    # A backend's own message may carry its DSN: only the type is told.
    backend = "Redis" if isinstance(exc, redis.RedisError) else "Postgres"
    return f"{backend} unreachable ({type(exc).__name__})"


class RefreshTask(GuardedTask):
    """`index.refresh`'s class: its final failure is one ERROR line with the cause."""

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        # Celery logs an exception in `throws` at INFO without a traceback; this is the
        # line an operator looks for. Anything else is a bug: Celery's traceback stays.
        if isinstance(exc, FAILURES):
            retries = self.request.retries
            logger.error(
                "health index refresh failed after %d %s: %s; the previous values stay in service",
                retries,
                "retry" if retries == 1 else "retries",
                why(exc),
            )


def retry_policy(settings: Settings) -> dict[str, Any]:
    """Celery's autoretry options for the refresh, from settings."""
    return {
        "autoretry_for": (SourceUnavailable, *TRANSIENT),
        "retry_backoff": settings.index_retry_backoff_seconds,
        "retry_backoff_max": settings.index_retry_backoff_max_seconds,
        "retry_jitter": True,
        "max_retries": settings.index_retry_max_retries,
    }


def longest_retry_wait(settings: Settings) -> int:
    """Seconds of countdown a refresh can spend waiting across all its retries, at worst."""
    return sum(
        min(settings.index_retry_backoff_max_seconds, settings.index_retry_backoff_seconds * 2**n)
        for n in range(settings.index_retry_max_retries)
    )


@app.task(
    name="index.refresh",
    **{**guarded(ErrorCode.INDEX_UNAVAILABLE), "base": RefreshTask},
    throws=FAILURES,
    **retry_policy(get_settings()),
)
def refresh(if_empty: object = False, retry: object = True) -> dict[str, Any]:
    """Fetch, validate and store the index; `retry=False` tries once and answers the fault.

    Messages without `retry` (beat's `index.refresh(if_empty=True)`, older producers) are
    retried as before.
    """
    settings = get_settings()

    def run() -> dict[str, Any]:
        only_when_empty = parse_if_empty(if_empty)  # refused before anything is fetched
        retried = parse_refresh_flag("retry", retry)
        try:
            return index.refresh(
                runtime.statbel(),
                runtime.index_store(),
                runtime.index_cache(),
                settings.index_base_years,
                if_empty=only_when_empty,
            )
        except FAILURES as exc:
            if retried:
                raise  # Celery's autoretry, then `RefreshTask.on_failure`
            logger.warning("health index refresh failed (tried once, not retried): %s", why(exc))
            code = (
                ErrorCode.BACKEND_UNAVAILABLE
                if isinstance(exc, TRANSIENT)
                else ErrorCode.INDEX_UNAVAILABLE
            )
            raise ZipscoreError(code, why(exc)) from None

    return answer(run)


@app.task(name="index.latest", **guarded(ErrorCode.WRONG_YEAR), **RETRY)
def latest(base_year: object) -> dict[str, Any]:
    settings = get_settings()
    return answer(
        lambda: index.latest(
            runtime.index_store(),
            runtime.index_cache(),
            base_year,
            settings.index_base_years,
            stale_after_seconds=settings.index_stale_after_seconds,
        )
    )
