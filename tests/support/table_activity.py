"""What Postgres did to zipscore's tables, from its statistics views: scans, writes, failures.

    before = activity(conn)
    ...                                   # send messages to the embedded worker
    assert activity(conn).since(before) == {}    # no statement touched a table, none failed

Per table (`pg_stat_user_tables`): sequential and index scans, rows inserted, updated and
deleted; for the database (`pg_stat_database`): transactions rolled back, so a statement that
reached Postgres and failed there (a value refused by a cast or a constraint scans nothing)
is counted too.

Postgres 15+ keeps each backend's counters in that backend and publishes them when it goes
idle, at most once a second: a backend that published less than a second ago waits for an
idle timeout (10 s). Read naively, a statement the worker just ran may not show for 10 s, and
a check that nothing ran passes whatever ran. So `activity` first asks every connection that
may have worked to publish now (`pg_stat_force_next_flush()`, see `FLUSH`): the reading
connection and this process's pool, which is the embedded worker's (tests/integration/
conftest.py runs it in a thread of this process). Connections of other processes cannot be
asked: it waits until each is gone (a closing backend publishes before it leaves
`pg_stat_activity`, e.g. the previous test's connection) or has been idle longer than the
idle timeout. Then it drops the statistics snapshot of the reading transaction.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import psycopg
from psycopg import sql

from worker.database import pool as db

# The tables a zipscore message or command could reach: the risk table, its version, the
# health index and the record of its refreshes.
TABLES = ("zipcodes", "risk_table_meta", "health_index", "index_refreshes")
COUNTERS = ("seq_scan", "idx_scan", "n_tup_ins", "n_tup_upd", "n_tup_del")
# A backend with no table counters pending skips even a forced flush, and with it the count
# of its failed transactions (a statement refused by a cast touches no table): the scan of a
# small catalog, never one of `TABLES`, gives it some. (A scalar subquery: one in FROM whose
# output is unused is planned away, and scans nothing.)
FLUSH = "SELECT pg_stat_force_next_flush(), (SELECT count(*) FROM pg_namespace)"
POOL_TIMEOUT_SECONDS = 10.0
# Postgres publishes an idle backend's pending counters after this long (PGSTAT_IDLE_INTERVAL
# is 10 s), and a closing one before it leaves pg_stat_activity.
IDLE_PUBLISHED_SECONDS = 11
SETTLE_TIMEOUT_SECONDS = 20.0
UNSETTLED = """
SELECT pid, state, backend_type FROM pg_stat_activity
WHERE datname = current_database() AND backend_type = 'client backend'
  AND pid <> ALL(%s)
  AND NOT (state = 'idle' AND state_change < clock_timestamp() - make_interval(secs => %s))
"""


@dataclass(frozen=True)
class Activity:
    """The counters of `TABLES` (`<table>.<counter>`) and `rollbacks`, at one moment."""

    counters: dict[str, int]

    def since(self, before: Activity) -> dict[str, int]:
        """The counters that moved since `before`, with how much: `{}` when none did."""
        return {
            name: value - before.counters.get(name, 0)
            for name, value in self.counters.items()
            if value != before.counters.get(name, 0)
        }


def flush_statistics(conn: psycopg.Connection) -> list[int]:
    """Make `conn` and every connection of this process's pool publish their counters now.

    The pool's connections are held all at once, so each one is reached; a task still
    running would first finish with its connection. Returns their backends' pids.
    """
    conn.execute(FLUSH)
    pids = [conn.info.backend_pid]
    pool = db.get_pool()
    size = pool.get_stats().get("pool_size", 0)
    with contextlib.ExitStack() as held:
        for _ in range(size):
            pooled = held.enter_context(pool.connection(timeout=POOL_TIMEOUT_SECONDS))
            pooled.execute(FLUSH)
            pids.append(pooled.info.backend_pid)
    return pids


def wait_for_other_backends(conn: psycopg.Connection, ours: list[int]) -> None:
    """Return once every other client backend of the database has published its counters."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_SECONDS
    while others := conn.execute(UNSETTLED, (ours, IDLE_PUBLISHED_SECONDS)).fetchall():
        assert time.monotonic() < deadline, f"backends still working in the database: {others}"
        time.sleep(0.05)


def activity(conn: psycopg.Connection) -> Activity:
    """The counters now, after every connection that may have worked has published them."""
    wait_for_other_backends(conn, flush_statistics(conn))
    conn.execute("SELECT pg_stat_clear_snapshot()")
    columns = sql.SQL(", ").join(
        sql.SQL("coalesce({}, 0)").format(sql.Identifier(name)) for name in COUNTERS
    )
    rows = conn.execute(
        sql.SQL("SELECT relname, {} FROM pg_stat_user_tables WHERE relname = ANY(%s)").format(
            columns
        ),
        (list(TABLES),),
    ).fetchall()
    counters = {
        f"{row[0]}.{name}": int(value)
        for row in rows
        for name, value in zip(COUNTERS, row[1:], strict=True)
    }
    missing = set(TABLES) - {row[0] for row in rows}
    assert not missing, f"no statistics for {sorted(missing)}: is the schema migrated?"
    failed = conn.execute(
        "SELECT xact_rollback FROM pg_stat_database WHERE datname = current_database()"
    ).fetchone()
    assert failed is not None
    counters["rollbacks"] = int(failed[0])
    return Activity(counters)


def row_counts(conn: psycopg.Connection) -> dict[str, int]:
    """How many rows each of `TABLES` holds (this scans them: read outside a measurement)."""
    counts = {}
    for table in TABLES:
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        ).fetchone()
        counts[table] = int(row[0]) if row else 0
    return counts
