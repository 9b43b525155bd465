"""Integration tier: the real Redis and Postgres, and one embedded Celery worker a session.

Database, Redis prefix and their clean-up come from `tests/support/services.py`; the local
fake Statbel (`statbel`) is here for every module that refreshes the health index.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from celery.contrib.testing.worker import start_worker
from pytest_httpserver import HTTPServer

from tests.support.statbel_server import PATH
from worker import runtime
from worker.celery_app import app
from worker.index.statbel import StatbelSource


@pytest.fixture(scope="session")
def celery_worker(database: str, redis_keys: redis.Redis) -> Iterator[object]:
    """One embedded Celery worker (solo pool, in a thread) for the whole session."""
    with start_worker(
        app,
        pool="solo",
        concurrency=1,
        perform_ping_check=False,
        loglevel="WARNING",
        shutdown_timeout=30,
    ) as worker:
        yield worker


@pytest.fixture
def statbel(httpserver: HTTPServer) -> Iterator[HTTPServer]:
    """A local fake Statbel; the embedded worker fetches from it (same process: the runtime
    is shared). `tests.support.statbel_server.serve` sets what it answers."""
    source = StatbelSource(httpserver.url_for(PATH), timeout=0.5, max_bytes=5_000_000)
    runtime.use_index(source=source)
    yield httpserver
    runtime.use_index()
