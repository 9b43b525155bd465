"""The health index service: refresh from the source, answer the latest month.

Plain functions over a source, a store and the cache, tested without Celery; the tasks in
`worker.index.tasks` only parse their message and call these.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime
from typing import Any, Protocol

import redis

from worker.contract.errors import ErrorCode, ZipscoreError
from worker.contract.index_cache import IndexCache, with_staleness
from worker.contract.validation import parse_base_year, parse_month
from worker.index.document import parse_document
from worker.index.store import HealthIndexStore, Latest

logger = logging.getLogger(__name__)


class Source(Protocol):
    """Where the document comes from (`worker.index.statbel.StatbelSource` in service)."""

    def fetch(self) -> bytes: ...


def entry_from(latest: Latest) -> dict[str, Any]:
    """The cacheable part of an answer: everything but `stale`."""
    return {
        "base_year": latest.base_year,
        "index": float(latest.value),
        "period": f"{latest.period:%Y-%m}",
        "fetched_at": latest.fetched_at.astimezone(UTC).isoformat(),
    }


def refresh(
    source: Source,
    store: HealthIndexStore,
    cache: IndexCache,
    supported: tuple[int, ...],
    *,
    if_empty: bool = False,
) -> dict[str, Any]:
    """Fetch, validate, store every month, then cache each base year's latest month.

    With `if_empty`, do nothing when some history is already stored (the start-up refresh).
    Source faults and refused documents propagate: nothing is written and the previous
    values stay in service.
    """
    if if_empty and not store.is_empty():
        return {"skipped": True, "months_stored": 0, "months_new": 0, "months_changed": 0}
    months = parse_document(source.fetch(), supported)
    report = store.store(months)
    for base_year in report.base_years:
        latest = store.latest(base_year)
        if latest is not None:
            cache.put(entry_from(latest))
    logger.info(
        "health index refreshed: %d months stored, %d new, %d changed, base years %s",
        report.months_stored,
        report.months_new,
        report.months_changed,
        ",".join(map(str, report.base_years)),
    )
    return {
        "skipped": False,
        "months_stored": report.months_stored,
        "months_new": report.months_new,
        "months_changed": report.months_changed,
        "base_years": list(report.base_years),
        "refreshed_at": report.refreshed_at.astimezone(UTC).isoformat(),
    }


def latest(
    store: HealthIndexStore,
    cache: IndexCache,
    base_year: object,
    supported: tuple[int, ...],
    *,
    stale_after_seconds: int,
    now: datetime | None = None,
) -> dict[str, Any]:
    """`{"base_year", "index", "period", "fetched_at", "stale"}` for the latest month.

    Raises:
        ZipscoreError: WRONG_YEAR for an unsupported base year, INDEX_UNAVAILABLE when no
            refresh has stored that base year yet.
    """
    year = parse_base_year(base_year, supported)
    found = store.latest(year)
    if found is None:
        raise ZipscoreError(
            ErrorCode.INDEX_UNAVAILABLE,
            f"no health index for base year {year} yet: no refresh has succeeded "
            "(try `zipscore index refresh`)",
        )
    entry = entry_from(found)
    cache.put(entry)
    return with_staleness(entry, stale_after_seconds, now or datetime.now(UTC))


def remove_month(
    store: HealthIndexStore,
    cache: IndexCache,
    base_year: object,
    month: object,
    supported: tuple[int, ...],
) -> dict[str, Any]:
    """Delete one stored month (an operator's correction) and re-cache the latest month.

    Returns `{"base_year", "removed", "value", "latest"}`, `latest` being the cache entry
    now answered for that base year, or None when no month is left.

    Raises:
        ZipscoreError: WRONG_YEAR for an unsupported base year or a month not written
            YYYY-MM; INDEX_UNAVAILABLE when that month is not stored (nothing changes).
    """
    year = parse_base_year(base_year, supported)
    period = parse_month(month)
    # Dropped before the delete, so that if Redis fails here nothing has changed, and if it
    # fails after the delete the next answer is recomputed from Postgres anyway.
    cache.forget(year)
    value = store.remove(year, period)
    if value is None:
        raise ZipscoreError(
            ErrorCode.INDEX_UNAVAILABLE,
            f"no stored month {period:%Y-%m} for base year {year}: nothing removed",
        )
    found = store.latest(year)
    entry = entry_from(found) if found is not None else None
    if entry is not None:
        with contextlib.suppress(redis.RedisError):
            cache.put(entry)
    logger.warning(
        "health index: removed %s of base year %d (was %s); latest is now %s",
        f"{period:%Y-%m}",
        year,
        value,
        entry["period"] if entry else "none",
    )
    return {"base_year": year, "removed": f"{period:%Y-%m}", "value": float(value), "latest": entry}
