"""Celery tasks for the drills only, never in the production task modules.

- `drill.noop`: the floor of a queue round trip, which the soak compares lookups with;
- `drill.hold`: a task that keeps its message in the worker's hands for a while, so that a
  drill can break the broker while a message is unacknowledged.

A drill's worker loads them with `celery -A worker worker -I ops.drills.drill_tasks`, so
only that worker knows them.
"""

from __future__ import annotations

import time
from typing import Any

from worker.celery_app import app


@app.task(name="drill.noop")  # type: ignore[untyped-decorator]
def noop(value: object) -> dict[str, Any]:
    return {"value": value}


@app.task(name="drill.hold")  # type: ignore[untyped-decorator]
def hold(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
