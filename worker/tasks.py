"""Celery tasks: thin wrappers that parse a message, set a retry policy and call plain code.

Task names are explicit and namespaced so producers send them by name. Each task answers
with the contract's JSON: the answer itself, or `{"error": {"code", "message"}}` when the
input is refused; infrastructure faults are retried with backoff and jitter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import redis
from psycopg_pool import PoolTimeout

import worker.db  # noqa: F401  (connects the signals that open each pool process's pool)
from worker import chunks, lookups, runtime
from worker.celery_app import app
from worker.errors import ZipscoreError

TRANSIENT = (psycopg.OperationalError, PoolTimeout, redis.ConnectionError, redis.TimeoutError)
RETRY = {
    "autoretry_for": TRANSIENT,
    "retry_backoff": 1,
    "retry_backoff_max": 20,
    "retry_jitter": True,
    "max_retries": 5,
}


def answer(compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run `compute`, turning a refused input into the contract's error envelope."""
    try:
        return compute()
    except ZipscoreError as exc:
        return exc.to_json()


@app.task(name="zipcodes.lookup", **RETRY)
def lookup(zipcode: object) -> dict[str, Any]:
    return answer(lambda: lookups.lookup(runtime.store(), runtime.cache(), zipcode))


@app.task(name="zipcodes.by_risk_factor", **RETRY)
def by_risk_factor(risk_factor: object) -> dict[str, Any]:
    return answer(lambda: lookups.by_risk_factor(runtime.store(), runtime.cache(), risk_factor))


@app.task(name="batch.pin_table", **RETRY)
def pin_table(version: object = None) -> dict[str, Any]:
    return answer(lambda: chunks.pin_table(runtime.store(), runtime.batch_store(), version))


@app.task(name="batch.score_chunk", **RETRY)
def score_chunk(message: object) -> dict[str, Any]:
    return answer(lambda: chunks.score_message(runtime.batch_store(), message))


@app.task(name="health.ping")  # no retries: a readiness probe wants the state of now
def ping() -> dict[str, Any]:
    """A worker is consuming `lookups` (the default queue) and its Postgres answers `SELECT 1`.

    The gateway's readiness check sends this, so the producer side never needs psycopg.
    """
    from worker.db import get_pool

    try:
        with get_pool().connection(timeout=1.0) as conn:
            conn.execute("SELECT 1")
    except (psycopg.Error, PoolTimeout) as exc:
        return {"worker": "ok", "postgres": f"unreachable ({type(exc).__name__})"}
    return {"worker": "ok", "postgres": "ok"}
