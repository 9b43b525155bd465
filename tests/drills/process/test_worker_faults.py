"""Drills: a worker stopped mid-work (SIGTERM, SIGKILL) and poison messages.

Given a worker with lookups queued, when it gets SIGTERM (Celery's warm shutdown), the
tasks in its hands finish, the ones it had prefetched go back to the queue, and a new
worker answers the rest: every lookup answered exactly once. When it gets SIGKILL, the
tasks in its hands stay unacknowledged in Redis and are delivered again after the
visibility timeout (shown in full under `make drills`, where the drill's worker runs with
a 60 s visibility timeout, the smallest the settings guard allows with 10 s time limits).
Poison messages (pickle, missing or extra arguments, wrong types, oversized) are refused,
logged once with their id, never retried, and the worker serves the next message.
"""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest
from kombu import Connection

from ops.drills.servers import RedisServer, WorkerProcess, wait_until
from tests.support.console import console
from tests.support.drills import (
    FULL,
    StartWorker,
    held_for_redelivery,
    results,
    run_producer,
    scaled,
)


def succeeded(*workers: WorkerProcess) -> Counter[str]:
    """How many times each task id succeeded, over the workers' logs."""
    text = "".join(worker.text() for worker in workers)
    return Counter(re.findall(r"Task zipcodes\.lookup\[([0-9a-f-]+)\] succeeded", text))


def test_a_warm_shutdown_finishes_in_flight_work_and_loses_nothing(
    drill_env: dict[str, str], redis_server: RedisServer, start_worker: StartWorker
) -> None:
    prefix = drill_env["ZIPSCORE_REDIS_PREFIX"]
    first = start_worker(drill_env, queues="lookups")
    sent = run_producer(drill_env, "send", str(scaled(100, 2000)), "3000")["ids"]
    wait_until(lambda: len(succeeded(first)) > 0, 30, "the first answers")
    assert first.terminate() == 0  # SIGTERM while the queue is still full
    second = start_worker(drill_env, queues="lookups")
    wait_until(lambda: len(results(redis_server, prefix, sent)) == len(sent), 120, "answers")
    counts = succeeded(first, second)
    assert set(counts) == set(sent)
    # Celery's warm shutdown closes the channel (kombu restores its unacknowledged
    # messages) while the last tasks finish: one in flight can run again on the next
    # worker. Lookups are idempotent (same answer, same cache key): no visible effect.
    twice = {task for task, n in counts.items() if n > 1}
    assert len(twice) <= 2, twice  # at most what was in flight (concurrency 2)
    assert held_for_redelivery(redis_server, prefix) == set()
    print(f"SIGTERM: {len(succeeded(first))} answered before, {len(succeeded(second))} after, "
          f"{len(twice)} ran twice")  # fmt: skip


def test_a_killed_worker_s_tasks_are_held_and_delivered_again(
    drill_env: dict[str, str], redis_server: RedisServer, start_worker: StartWorker
) -> None:
    env = {**drill_env, "ZIPSCORE_VISIBILITY_TIMEOUT_SECONDS": "60",
           "ZIPSCORE_TASK_SOFT_TIME_LIMIT": "5", "ZIPSCORE_TASK_TIME_LIMIT": "10",
           "ZIPSCORE_INDEX_RETRY_BACKOFF_MAX_SECONDS": "1"}  # fmt: skip
    prefix = env["ZIPSCORE_REDIS_PREFIX"]
    first = start_worker(env, queues="lookups")
    sent = run_producer(env, "send", str(scaled(100, 2000)), "4000")["ids"]
    wait_until(lambda: len(succeeded(first)) > 0, 30, "the first answers")
    # Kill while the worker holds messages (between two tasks it may hold none).
    wait_until(lambda: bool(held_for_redelivery(redis_server, prefix)), 30, "a held message", 0.01)
    first.kill()  # SIGKILL: no shutdown, no acknowledgement of what it held
    answered_before = set(succeeded(first))
    in_hands = held_for_redelivery(redis_server, prefix)
    held = in_hands - answered_before  # not answered yet: must be delivered again
    second = start_worker(env, queues="lookups")

    def in_transit() -> set[str]:
        done = results(redis_server, prefix, sent)
        return set(sent) - set(done) - held_for_redelivery(redis_server, prefix)

    # kombu's Redis transport BRPOPs a message, then records it as unacknowledged: one
    # handed out in a BRPOP reply the killed process had not read yet is gone (its
    # producer says TIMEOUT; a batch chunk is sent again at its deadline). At most one.
    wait_until(lambda: len(in_transit()) <= 1, scaled(60, 120), "every lookup answered or held")
    lost = in_transit()
    # What the killed worker held (in flight and prefetched); it can finish the one it held
    # in the instant between the check above and the kill, so none is possible too.
    assert len(held) <= 4
    if FULL:  # the visibility timeout passes: Redis hands them to the live worker
        wait_until(lambda: held <= set(succeeded(second)), 200, "the redelivery", 1)
        assert held_for_redelivery(redis_server, prefix) == set()
    counts = succeeded(first, second)
    duplicates = {task for task, n in counts.items() if n > 1}
    # A task killed after its answer was stored but before its ack may run again: lookups
    # are idempotent (same answer, same cache key), so it has no visible effect. Only what
    # the worker had in hands at the kill, answered or not, may run twice.
    assert duplicates <= in_hands
    print(f"SIGKILL: {len(held)} held for redelivery, {len(duplicates)} ran twice, "
          f"{len(lost)} lost in a BRPOP reply")  # fmt: skip


POISON = [
    ("zipcodes.lookup", "poison-missing", []),
    ("zipcodes.lookup", "poison-extra", [9000, 9001]),
    ("zipcodes.lookup", "poison-type", [{"zipcode": 9000}]),
    ("zipcodes.by_risk_factor", "poison-injection", ["A' OR '1'='1"]),
    ("zipcodes.lookup", "poison-oversized", ["9" * 100_000]),
    ("index.latest", "poison-year", [None]),
    ("batch.score_chunk", "poison-chunk", [{"job": "../../etc"}]),
]


def test_poison_messages_are_refused_once_and_the_worker_goes_on(
    drill_env: dict[str, str], redis_server: RedisServer, start_worker: StartWorker
) -> None:
    prefix = drill_env["ZIPSCORE_REDIS_PREFIX"]
    worker = start_worker(drill_env)
    with Connection(redis_server.url, transport_options={"global_keyprefix": f"{prefix}:"}) as conn:
        conn.Producer(serializer="pickle").publish(
            {"args": [9000]}, routing_key="lookups", exchange="", serializer="pickle",
            headers={"task": "zipcodes.lookup", "id": "poison-pickle"},
        )  # fmt: skip
    for name, task_id, args in POISON:
        run_producer(drill_env, "raw", name, task_id, json.dumps(args))
    after = console("lookup", "9170", env=drill_env)
    assert (after.returncode, after.stdout) == (0, "A\n"), after.stderr
    ids = [task_id for _, task_id, _ in POISON]
    wait_until(lambda: len(results(redis_server, prefix, ids)) == len(ids), 30, "answers")
    for meta in results(redis_server, prefix, ids).values():
        assert meta["status"] == "SUCCESS", meta  # answered and acknowledged: no retry
        assert "error" in str(meta["result"]), meta
    log = worker.text()
    for task_id in ids:
        assert "Retry in" not in "".join(line for line in log.splitlines() if task_id in line)
    assert "Traceback" not in log
    assert log.count("poison-pickle") == 1, log[-3000:]  # refused: its id, once
    # Refused by the broker transport before Celery sees it (worker/broker/envelope.py).
    assert "refused message on queue lookups id=poison-pickle task=zipcodes.lookup" in log
    for task_id in ("poison-missing", "poison-extra", "poison-oversized"):
        assert log.count(f"task_id={task_id}:") == 1  # the guard's one line
    assert held_for_redelivery(redis_server, prefix) == set()
    assert worker.process.poll() is None


@pytest.mark.parametrize("serializer", ["pickle", "yaml", "msgpack"])
def test_foreign_content_types_never_run(serializer: str) -> None:
    from worker.celery_app import app

    assert serializer not in app.conf.accept_content
