"""Celery tasks of the health index, on the `index` queue: `index.refresh`, `index.latest`.

    celery -A worker worker -Q lookups,index       # a worker that answers them
    celery -A worker beat                          # runs `index.refresh` on its schedule

A refresh that meets a transient fault (network, timeout, 5xx, 429, Postgres or Redis down)
is retried by Celery with exponential backoff and jitter, a bounded number of times; then
it fails (logged, FAILURE in Flower) and the previous values stay in service. A refused
document or a 4xx is not retried: the same request would get the same answer. A message
whose `if_empty` is not a boolean is answered INDEX_UNAVAILABLE before anything is fetched.
"""

from __future__ import annotations

from typing import Any

from worker import index, runtime
from worker.celery_app import app
from worker.errors import ErrorCode
from worker.settings import Settings, get_settings
from worker.statbel import SourceUnavailable
from worker.tasks import RETRY, TRANSIENT, answer, guarded
from worker.validation import parse_if_empty


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
    **guarded(ErrorCode.INDEX_UNAVAILABLE),
    **retry_policy(get_settings()),
)
def refresh(if_empty: object = False) -> dict[str, Any]:
    settings = get_settings()

    def run() -> dict[str, Any]:
        only_when_empty = parse_if_empty(if_empty)  # refused before anything is fetched
        return index.refresh(
            runtime.statbel(),
            runtime.index_store(),
            runtime.index_cache(),
            settings.index_base_years,
            if_empty=only_when_empty,
        )

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
