"""A no-op Celery task for the soak drill only: `drill.noop`, the floor of a queue round trip.

Not in the production task modules: the soak starts its worker with
`celery -A worker worker -I ops.drills.noop_tasks` so that only that worker knows it.
"""

from __future__ import annotations

from typing import Any

from worker.celery_app import app


@app.task(name="drill.noop")  # type: ignore[untyped-decorator]
def noop(value: object) -> dict[str, Any]:
    return {"value": value}
