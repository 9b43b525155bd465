"""The Postgres pool of a worker process, counting its connections in use for the metrics."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from worker.telemetry import metrics


class MeasuredPool(ConnectionPool):
    """A ConnectionPool that reports connections in use and idle as they come and go."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._in_use = 0
        self._count_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def getconn(self, timeout: float | None = None) -> psycopg.Connection[Any]:
        conn = super().getconn(timeout)
        with self._count_lock:
            self._in_use += 1
            in_use = self._in_use
        metrics.pool_checked_out(in_use, self.get_stats().get("pool_available", 0))
        return conn

    def putconn(self, conn: psycopg.Connection[Any]) -> None:
        super().putconn(conn)
        with self._count_lock:
            self._in_use -= 1
            in_use = self._in_use
        metrics.pool_counts(in_use, self.get_stats().get("pool_available", 0))


def pool_class() -> type[ConnectionPool]:
    """The pool to open: measured while metrics are recorded, psycopg's own otherwise."""
    return MeasuredPool if metrics.enabled() else ConnectionPool
