"""Integration tier: the real Redis and Postgres, and one embedded Celery worker a session.

Database, Redis prefix and their clean-up come from `tests/services.py`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from celery.contrib.testing.worker import start_worker

from worker.celery_app import app


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
