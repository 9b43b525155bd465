"""What the drills share: their scale, the drill producer, and reading a drill Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from ops.drills.servers import RedisServer, WorkerProcess
from tests.support.paths import ROOT

FULL = os.environ.get("ZIPSCORE_DRILLS") == "full"
StartWorker = Callable[..., WorkerProcess]


def scaled(ci: Any, full: Any) -> Any:
    """The figure for this run: `full` under `make drills`, `ci` in `make test`."""
    return full if FULL else ci


def run_producer(env: dict[str, str], *args: str, timeout: float = 120) -> Any:
    """`python -m tests.support.drill_producer ARGS` with `env`; its JSON answer."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.drill_producer", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def results(server: RedisServer, prefix: str, ids: list[str]) -> dict[str, dict[str, object]]:
    """The stored Celery results of `ids` that exist (JSON, by id)."""
    client = server.client()
    raw = client.mget([f"{prefix}:celery-task-meta-{task_id}" for task_id in ids])
    return {task_id: json.loads(value) for task_id, value in zip(ids, raw, strict=True) if value}


def held_for_redelivery(server: RedisServer, prefix: str) -> set[str]:
    """Ids of the messages delivered but never acknowledged (kombu's `unacked` hash)."""
    entries = server.client().hvals(f"{prefix}:unacked")
    return {json.loads(entry)[0]["headers"]["id"] for entry in entries}
