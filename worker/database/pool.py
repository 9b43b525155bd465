"""Postgres access: one connection pool per worker process, and one-off connections.

The pool is opened in each worker process after the fork (`worker_process_init`), never
in the prefork parent, and closed at process shutdown. Code that runs outside a prefork
child (the solo pool, eager tasks, the CLI) gets a pool opened lazily on first use.
"""

from __future__ import annotations

import math
import os
import threading
from typing import Any

import psycopg
from celery.signals import worker_process_init, worker_process_shutdown
from psycopg_pool import ConnectionPool

from worker.contract.settings import Settings, get_settings


class _ProcessPool:
    """The pool of the process that opened it; a forked child never uses its parent's."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pool: ConnectionPool | None = None
        self.pid = 0

    def current(self) -> ConnectionPool | None:
        return self.pool if self.pool is not None and self.pid == os.getpid() else None


_process = _ProcessPool()


def connect(settings: Settings | None = None, **kwargs: Any) -> psycopg.Connection:
    """A fresh autocommit connection (for migrations, loads and the CLI)."""
    settings = settings or get_settings()
    return psycopg.connect(
        settings.database,
        autocommit=True,
        connect_timeout=max(1, math.ceil(settings.db_connect_timeout)),  # 0 would mean forever
        **kwargs,
    )


def open_pool(settings: Settings | None = None) -> ConnectionPool:
    """Open this process's pool (once); connections are made in the background."""
    settings = settings or get_settings()
    with _process.lock:
        pool = _process.current()
        if pool is None:
            pool = ConnectionPool(
                settings.database,
                min_size=settings.db_pool_min_size,
                max_size=settings.db_pool_max_size,
                timeout=settings.db_connect_timeout,
                kwargs={"autocommit": True},
                name="zipscore",
                open=False,
            )
            pool.open(wait=False)
            _process.pool, _process.pid = pool, os.getpid()
        return pool


def get_pool() -> ConnectionPool:
    """The pool of the current process, opened on first use."""
    return _process.current() or open_pool()


def close_pool() -> None:
    with _process.lock:
        pool = _process.current()
        if pool is not None:
            pool.close()
        _process.pool, _process.pid = None, 0


@worker_process_init.connect
def _open_in_child(**_: Any) -> None:
    open_pool()


@worker_process_shutdown.connect
def _close_in_child(**_: Any) -> None:
    close_pool()
