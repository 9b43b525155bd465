"""The zipcode risk table in Postgres: copies, listings and atomic reloads.

Every read returns the table version it saw, in the same statement, so an answer is cached
under the version of the data it came from. Lookups read a per-process copy of the table
(worker/lookups/current_table.py), not a query per zipcode.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from worker.lookups.risk_table import Rule, expand

VERSION_SQL = "SELECT version FROM risk_table_meta"
VERSION_CHECK_TIMEOUT = 0.5  # seconds to wait for a pooled connection for that check
# What a store raises when Postgres cannot be reached (tasks retry on these).
UNREACHABLE = (psycopg.OperationalError, PoolTimeout)
# One statement, so the version and the rows come from one snapshot of the database.
SNAPSHOT_SQL = """
SELECT (SELECT version FROM risk_table_meta),
       COALESCE((SELECT json_object_agg(zipcode, risk_factor) FROM zipcodes), '{}')
"""
BY_RISK_FACTOR_SQL = """
SELECT (SELECT version FROM risk_table_meta),
       COALESCE((SELECT array_agg(zipcode ORDER BY zipcode)
                 FROM zipcodes WHERE risk_factor = %s), '{}')
"""


class ZipcodeStore(Protocol):
    """Where risk factors are read from (Postgres in service, a dict in unit tests)."""

    def current_version(self) -> int: ...

    def by_risk_factor(self, risk_factor: str) -> tuple[int, list[int]]: ...

    def snapshot(self) -> tuple[int, dict[int, str]]: ...


class PostgresZipcodeStore:
    """Reads through a connection pool; every value is a bound parameter."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    def current_version(self) -> int:
        # A short wait: this check runs inside a lookup, and a lookup that cannot reach
        # Postgres goes on with the copy it has (worker/lookups/current_table.py).
        with self._pool.connection(timeout=VERSION_CHECK_TIMEOUT) as conn:
            row = conn.execute(VERSION_SQL, prepare=True).fetchone()
        assert row is not None
        return int(row[0])

    def by_risk_factor(self, risk_factor: str) -> tuple[int, list[int]]:
        with self._pool.connection() as conn:
            row = conn.execute(BY_RISK_FACTOR_SQL, (risk_factor,), prepare=True).fetchone()
        assert row is not None
        return int(row[0]), list(row[1])

    def snapshot(self) -> tuple[int, dict[int, str]]:
        """The current version and the whole table (at most 9,000 pairs), read together."""
        with self._pool.connection() as conn:
            row = conn.execute(SNAPSHOT_SQL, prepare=True).fetchone()
        assert row is not None
        return int(row[0]), {int(z): str(f).strip() for z, f in row[1].items()}


def load_rules(conn: psycopg.Connection, rules: Iterable[Rule]) -> int:
    """Replace the whole table with `rules` in one transaction; returns the new version.

    Readers see the old table until the commit, then the new one; concurrent loads queue
    on the meta row's lock.
    """
    pairs = expand(rules)
    with conn.transaction():
        conn.execute("SELECT version FROM risk_table_meta FOR UPDATE")
        conn.execute("DELETE FROM zipcodes")
        with conn.cursor().copy("COPY zipcodes (zipcode, risk_factor) FROM STDIN") as copy:
            for pair in pairs:
                copy.write_row(pair)
        row = conn.execute(
            "UPDATE risk_table_meta SET version = version + 1, loaded_at = now(), rows = %s"
            " RETURNING version",
            (len(pairs),),
        ).fetchone()
    assert row is not None
    return int(row[0])


def table_size(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT rows FROM risk_table_meta").fetchone()
    return int(row[0]) if row else 0


def table_version(conn: psycopg.Connection) -> int:
    row = conn.execute(VERSION_SQL).fetchone()
    return int(row[0]) if row else 0
