"""A container stop (SIGTERM remapped to Celery's cold shutdown) is soft: short tasks finish,
long ones go back on their queue at once, and the worker is gone within the grace period.

Compose sets REMAP_SIGTERM=SIGQUIT and ZIPSCORE_WORKER_SOFT_SHUTDOWN_SECONDS under its stop
grace period. Without the soft window the short task would be cut off; without the cold
shutdown's requeue the long task's message would wait the visibility timeout (1 h) in
kombu's unacked set before any worker saw it again.
"""

from __future__ import annotations

import json
import signal
import time
import uuid

from ops.drills.servers import RedisServer, wait_until
from tests.support.drills import StartWorker, held_for_redelivery, results, run_producer

SOFT_SECONDS = 6.0


def queued(server: RedisServer, prefix: str, queue: str) -> set[str]:
    """Ids of the messages waiting on `queue`."""
    entries = server.client().lrange(f"{prefix}:{queue}", 0, -1)
    return {json.loads(entry)["headers"]["id"] for entry in entries}


def test_a_stop_lets_short_tasks_finish_and_requeues_long_ones_at_once(
    drill_env: dict[str, str], redis_server: RedisServer, start_worker: StartWorker
) -> None:
    env = {**drill_env, "REMAP_SIGTERM": "SIGQUIT",
           "ZIPSCORE_WORKER_SOFT_SHUTDOWN_SECONDS": str(SOFT_SECONDS),
           "ZIPSCORE_TASK_SOFT_TIME_LIMIT": "60", "ZIPSCORE_TASK_TIME_LIMIT": "90"}  # fmt: skip
    prefix = env["ZIPSCORE_REDIS_PREFIX"]
    worker = start_worker(
        env, queues="lookups", concurrency=2, extra=("-I", "ops.drills.drill_tasks")
    )
    short, long = (f"{kind}-{uuid.uuid4().hex[:8]}" for kind in ("short", "long"))
    # Given a long task running, then a short one, their messages unacknowledged
    run_producer(env, "raw", "drill.hold", long, "[60]")
    wait_until(lambda: long in held_for_redelivery(redis_server, prefix), 30, "the long task")
    run_producer(env, "raw", "drill.hold", short, "[3]")
    wait_until(lambda: short in held_for_redelivery(redis_server, prefix), 30, "the short task")

    # When the container runtime stops the worker (SIGTERM to its main process)
    started = time.monotonic()
    worker.process.send_signal(signal.SIGTERM)
    code = worker.process.wait(SOFT_SECONDS + 20)
    took = time.monotonic() - started

    # Then it is gone within the soft window and a margin, the short task finished,
    # and the long task's message is back on its queue, not held for the visibility timeout
    assert took < SOFT_SECONDS + 10, f"exited after {took:.1f} s (code {code})"
    assert results(redis_server, prefix, [short]).get(short, {}).get("status") == "SUCCESS"
    assert long in queued(redis_server, prefix, "lookups")
    assert long not in held_for_redelivery(redis_server, prefix)
    assert "Unrecoverable error" not in worker.text()
    print(f"soft shutdown: worker gone in {took:.1f} s (window {SOFT_SECONDS:.0f} s), "
          "short task finished, long task requeued")  # fmt: skip
