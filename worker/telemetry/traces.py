"""Traces in a worker: each prefork child instruments itself (OTel's rule for forked pools);
off unless OTEL_TRACES_EXPORTER is set (worker/contract/tracing.py)."""

from __future__ import annotations

from typing import Any

from celery.signals import worker_process_init

from worker.contract import tracing


@worker_process_init.connect
def _trace_in_child(**_: Any) -> None:
    if tracing.setup("zipscore-worker"):
        from worker.database import pool as db

        db.close_pool()  # its first connections were made before psycopg was instrumented
        db.open_pool()
