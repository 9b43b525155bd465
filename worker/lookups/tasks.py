"""Celery tasks of lookups, on the `lookups` queue: `zipcodes.*`, and the readiness ping.

Thin wrappers (see worker/task_guard.py): parse the message, set the retry policy, call
the plain functions of worker/lookups/answers.py.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg_pool import PoolTimeout

import worker.database.pool  # noqa: F401  (connects the signals that open each pool process's pool)
from worker import runtime
from worker.celery_app import app
from worker.contract.errors import ErrorCode
from worker.lookups import answers as lookups
from worker.task_guard import RETRY, answer, guarded


@app.task(name="zipcodes.lookup", **guarded(ErrorCode.ZIPCODE_NOT_VALID), **RETRY)
def lookup(zipcode: object) -> dict[str, Any]:
    return answer(lambda: lookups.lookup(runtime.table(), runtime.cache(), zipcode))


@app.task(name="zipcodes.by_risk_factor", **guarded(ErrorCode.RISK_FACTOR_NOT_VALID), **RETRY)
def by_risk_factor(risk_factor: object) -> dict[str, Any]:
    return answer(lambda: lookups.by_risk_factor(runtime.store(), runtime.cache(), risk_factor))


# No retries: a readiness probe wants the state of now.
@app.task(name="health.ping", **guarded(ErrorCode.BACKEND_UNAVAILABLE))
def ping() -> dict[str, Any]:
    """A worker is consuming `lookups` (the default queue) and its Postgres answers `SELECT 1`.

    The gateway's readiness check sends this, so the producer side never needs psycopg.
    """
    from worker.database.pool import get_pool

    try:
        with get_pool().connection(timeout=1.0) as conn:
            conn.execute("SELECT 1")
    except (psycopg.Error, PoolTimeout) as exc:
        return {"worker": "ok", "postgres": f"unreachable ({type(exc).__name__})"}
    return {"worker": "ok", "postgres": "ok"}
