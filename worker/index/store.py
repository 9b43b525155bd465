"""The health index history in Postgres: idempotent upserts, the latest month, refreshes.

A refresh writes its months and its row in `index_refreshes` in one transaction, so the
record of a successful refresh never exists without its data (and the other way round).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Protocol

from psycopg_pool import ConnectionPool

from worker.index.document import IndexMonth

UPSERT_SQL = """
WITH upserted AS (
    INSERT INTO health_index AS h (base_year, period, value, fetched_at)
    SELECT b, p, v, now()
    FROM unnest(%(base_years)s::integer[], %(periods)s::date[], %(values)s::numeric[])
        AS t (b, p, v)
    ON CONFLICT (base_year, period) DO UPDATE
        SET value = EXCLUDED.value, fetched_at = EXCLUDED.fetched_at
        WHERE h.value IS DISTINCT FROM EXCLUDED.value
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM upserted
"""
RECORD_SQL = """
INSERT INTO index_refreshes (base_years, months_stored, months_new, months_changed)
VALUES (%s, %s, %s, %s)
RETURNING refreshed_at
"""
LATEST_SQL = """
SELECT h.period, h.value,
       coalesce((SELECT max(r.refreshed_at) FROM index_refreshes r
                 WHERE h.base_year = ANY (r.base_years)), h.fetched_at)
FROM health_index h
WHERE h.base_year = %s
ORDER BY h.period DESC
LIMIT 1
"""
REMOVE_SQL = """
DELETE FROM health_index WHERE base_year = %s AND period = %s RETURNING value
"""


@dataclass(frozen=True)
class StoreReport:
    """What one refresh did: months seen, months new, months whose value changed."""

    base_years: tuple[int, ...]
    months_stored: int
    months_new: int
    months_changed: int
    refreshed_at: datetime


@dataclass(frozen=True)
class Latest:
    """The latest month of one base year, and when a refresh last confirmed that base year."""

    base_year: int
    period: date
    value: Decimal
    fetched_at: datetime


class HealthIndexStore(Protocol):
    """Where the history lives (Postgres in service, memory in unit tests)."""

    def is_empty(self) -> bool: ...

    def store(self, months: Sequence[IndexMonth]) -> StoreReport: ...

    def latest(self, base_year: int) -> Latest | None: ...

    def remove(self, base_year: int, period: date) -> Decimal | None: ...


class PostgresHealthIndexStore:
    """Reads and writes through a connection pool; every value is a bound parameter."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    def is_empty(self) -> bool:
        with self._pool.connection() as conn:
            row = conn.execute("SELECT NOT EXISTS (SELECT 1 FROM health_index)").fetchone()
        return bool(row and row[0])

    def store(self, months: Sequence[IndexMonth]) -> StoreReport:
        """Upsert every month (unchanged rows are not rewritten) and record the refresh."""
        base_years = tuple(sorted({m.base_year for m in months}))
        params = {
            "base_years": [m.base_year for m in months],
            "periods": [m.period for m in months],
            "values": [m.value for m in months],
        }
        with self._pool.connection() as conn, conn.transaction():
            counts = conn.execute(UPSERT_SQL, params).fetchone()
            assert counts is not None
            new, changed = int(counts[0]), int(counts[1])
            row = conn.execute(RECORD_SQL, (list(base_years), len(months), new, changed)).fetchone()
        assert row is not None
        return StoreReport(base_years, len(months), new, changed, row[0])

    def latest(self, base_year: int) -> Latest | None:
        with self._pool.connection() as conn:
            row = conn.execute(LATEST_SQL, (base_year,), prepare=True).fetchone()
        if row is None:
            return None
        return Latest(base_year, row[0], row[1], row[2])

    def remove(self, base_year: int, period: date) -> Decimal | None:
        """Delete one month; its value, or None when it was not stored."""
        with self._pool.connection() as conn:
            row = conn.execute(REMOVE_SQL, (base_year, period)).fetchone()
        return None if row is None else Decimal(row[0])
