"""Drill: Redis reaches `maxmemory` (policy noeviction) under a worker with work queued.

Given a worker holding two tasks and 30 lookups queued on a Redis of the test's own, when
a filler key takes Redis past its `maxmemory` (every write refused: "OOM command not
allowed"), then the worker waits (it used to exit with "Unrecoverable error:
OutOfMemoryError", and a message taken by BRPOP could be in neither the queue nor the
unacknowledged set); once the filler is deleted it answers every lookup, and no message
is lost at any time: queued + unacknowledged + answered == sent. A worker told to stop
(SIGTERM) while Redis is full exits within a bound and leaves its messages in Redis.
See worker/broker/memory.py.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

import redis

from ops.drills.servers import RedisServer, WorkerProcess, wait_until
from tests.support.drills import StartWorker, held_for_redelivery, results, run_producer

MAXMEMORY = 24 * 1024 * 1024
LOOKUPS = 30


def fill(server: RedisServer) -> None:
    """Take Redis past its maxmemory (noeviction) with one key, "filler"."""
    client = server.client()
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", str(MAXMEMORY))
    used = int(client.info("memory")["used_memory"])
    # SETRANGE allocates the whole string from a tiny command (a SET of 24 MB would be
    # refused for its own query buffer).
    client.setrange("filler", MAXMEMORY - used + 1024 * 1024, b"x")
    assert int(client.info("memory")["used_memory"]) > MAXMEMORY


def queued(server: RedisServer, prefix: str) -> set[str]:
    entries = server.client().lrange(f"{prefix}:lookups", 0, -1)
    return {json.loads(entry)["headers"]["id"] for entry in entries}


def accounted(server: RedisServer, prefix: str, sent: list[str]) -> set[str]:
    """The ids of `sent` that are queued, unacknowledged, or answered."""
    answered = set(results(server, prefix, sent))
    return answered | held_for_redelivery(server, prefix) | queued(server, prefix)


def hold_both_slots(env: dict[str, str], server: RedisServer, seconds: float) -> list[str]:
    """Two `drill.hold` tasks in the worker's hands (concurrency 2), unacknowledged."""
    holds = [f"hold-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    for task_id in holds:
        run_producer(env, "raw", "drill.hold", task_id, f"[{seconds}]")
    prefix = env["ZIPSCORE_REDIS_PREFIX"]
    wait_until(lambda: set(holds) <= held_for_redelivery(server, prefix), 30, "two held tasks")
    return holds


def answered(server: RedisServer, prefix: str, ids: list[str]) -> int:
    return sum(meta["status"] == "SUCCESS" for meta in results(server, prefix, ids).values())


def alive(worker: WorkerProcess) -> bool:
    assert worker.process.poll() is None, worker.text()[-3000:]
    return True


def test_a_worker_waits_while_redis_is_out_of_memory_and_loses_nothing(
    drill_env: dict[str, str], redis_server: RedisServer, start_worker: StartWorker
) -> None:
    prefix = drill_env["ZIPSCORE_REDIS_PREFIX"]
    worker = start_worker(drill_env, queues="lookups", extra=("-I", "ops.drills.drill_tasks"))
    holds = hold_both_slots(drill_env, redis_server, 4)
    sent = run_producer(drill_env, "send", str(LOOKUPS), "3000")["ids"]

    # When: Redis is full while the held tasks end and the lookups wait.
    fill(redis_server)
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:  # the worker waits; nothing goes missing meanwhile
        assert alive(worker)
        missing = set(sent) - accounted(redis_server, prefix, sent)
        assert not missing, (
            f"messages in neither the queue, the unacked set nor answered: {missing}"
        )
        time.sleep(0.3)
    assert "waiting to store a task's result" in worker.text()

    # Then: once Redis has room, every lookup and both held tasks are answered.
    redis_server.client().delete("filler")
    freed = time.monotonic()
    wait_until(lambda: alive(worker) and answered(redis_server, prefix, holds) == 2, 30,
               "the held tasks' results", 0.1)  # fmt: skip
    resumed = time.monotonic() - freed
    wait_until(lambda: answered(redis_server, prefix, sent) == LOOKUPS, 60, "answers", 0.2)
    drained = time.monotonic() - freed
    answers = results(redis_server, prefix, [*holds, *sent])
    assert {meta["status"] for meta in answers.values()} == {"SUCCESS"}
    assert "Unrecoverable error" not in worker.text()
    wait_until(lambda: not held_for_redelivery(redis_server, prefix), 10, "no held message")
    print(f"\nOOM for 6 s with 2 tasks in hand and {LOOKUPS} lookups queued: worker waited, "
          f"first result stored {resumed:.2f} s after memory was freed, all {LOOKUPS} answered "
          f"{drained:.2f} s after; 0 lost")  # fmt: skip


def test_a_worker_told_to_stop_while_redis_is_out_of_memory_exits_and_keeps_its_messages(
    drill_env: dict[str, str], redis_server: RedisServer, start_worker: StartWorker
) -> None:
    env = {**drill_env, "ZIPSCORE_VISIBILITY_TIMEOUT_SECONDS": "120",
           "ZIPSCORE_TASK_SOFT_TIME_LIMIT": "12", "ZIPSCORE_TASK_TIME_LIMIT": "20",
           "ZIPSCORE_INDEX_RETRY_BACKOFF_MAX_SECONDS": "1"}  # fmt: skip
    prefix = env["ZIPSCORE_REDIS_PREFIX"]
    worker = start_worker(env, queues="lookups", extra=("-I", "ops.drills.drill_tasks"))
    holds = hold_both_slots(env, redis_server, 4)
    sent = run_producer(env, "send", "10", "3000")["ids"]
    fill(redis_server)

    def waiting() -> set[str]:
        lines = worker.text().splitlines()
        return {task for task in holds for line in lines
                if task in line and "waiting to store a task's result" in line}  # fmt: skip

    wait_until(lambda: waiting() == set(holds), 15, "both tasks to wait for room", 0.1)

    # When: SIGTERM while both tasks wait for room to store their result.
    started = time.monotonic()
    exit_code = worker.terminate(timeout=30)
    took = time.monotonic() - started

    # Then: it exits once the tasks gave up waiting (6 s into each, half their soft time
    # limit) and leaves every message in Redis: the held tasks unacknowledged, the rest
    # queued. A task's time limit must not land while its process writes its outcome to
    # the worker: that left the worker's warm shutdown waiting on the pipe for good (seen
    # while developing PatientBackend, which now gives up half-way to the soft limit).
    assert took < 15, f"the worker took {took:.1f} s to stop"
    assert exit_code == 0, worker.text()[-3000:]
    assert set(holds) <= held_for_redelivery(redis_server, prefix)
    assert set(sent) <= accounted(redis_server, prefix, sent)
    assert "Unrecoverable error" not in worker.text()
    print(
        f"\nSIGTERM with Redis out of memory: exited {exit_code} in {took:.1f} s, "
        f"2 held tasks unacknowledged for redelivery, {len(sent)} lookups accounted for"
    )


def test_a_worker_started_while_redis_is_out_of_memory_waits_then_answers(
    drill_env: dict[str, str], redis_server: RedisServer, start_worker: StartWorker
) -> None:
    """Regression: kombu declares the queues with a MULTI, refused at maxmemory, and the
    worker exited at start ("Unrecoverable error: OutOfMemoryError")."""
    prefix = drill_env["ZIPSCORE_REDIS_PREFIX"]
    sent = run_producer(drill_env, "send", str(LOOKUPS), "3000")["ids"]
    fill(redis_server)
    worker = start_worker(drill_env, queues="lookups", wait=False)
    wait_until(lambda: alive(worker) and "waiting to declare a queue" in worker.text(), 60,
               "the worker to wait for room", 0.2)  # fmt: skip
    time.sleep(2)
    assert alive(worker)
    assert accounted(redis_server, prefix, sent) == set(sent)

    redis_server.client().delete("filler")
    freed = time.monotonic()
    wait_until(lambda: answered(redis_server, prefix, sent) == LOOKUPS, 60, "answers", 0.2)
    print(f"\nworker started on a full Redis: waited, all {LOOKUPS} answered "
          f"{time.monotonic() - freed:.2f} s after memory was freed")  # fmt: skip


def taken_as_redis_fills(
    client: redis.Redis, prefix: str, start: Callable[[], WorkerProcess]
) -> WorkerProcess:
    """The lookup just queued is moved onto `lookups` in the same transaction that takes
    Redis past its maxmemory: the worker started by `start` takes it and cannot record it.
    Returns that worker once it says it is waiting for room."""
    # Parked on a list no worker consumes until the worker is up.
    client.rpoplpush(f"{prefix}:lookups", f"{prefix}:parked")
    worker = start()
    client.setrange("filler", MAXMEMORY, b"x")
    used = int(client.info("memory")["used_memory"])
    with client.pipeline(transaction=True) as pipe:
        pipe.lmove(f"{prefix}:parked", f"{prefix}:lookups", "RIGHT", "LEFT")
        pipe.config_set("maxmemory", str(used - 1024 * 1024))
        pipe.execute()
    wait_until(lambda: alive(worker) and "waiting to record a delivered message" in worker.text(),
               15, "the worker to wait for room", 0.1)  # fmt: skip
    return worker


def test_a_message_taken_as_redis_fills_is_recorded_and_answered_once_it_has_room(
    drill_env: dict[str, str], redis_server: RedisServer, start_worker: StartWorker
) -> None:
    """Regression: the worker's BRPOP takes a message in the very instant Redis fills (its
    recording, ZADD and HSET in a MULTI, is refused): that message was in no Redis key and
    the worker exited ("one message in 30 was in neither the queue nor the unacked set")."""
    prefix = drill_env["ZIPSCORE_REDIS_PREFIX"]
    parked = run_producer(drill_env, "raw", "zipcodes.lookup", str(uuid.uuid4()), "[3000]")
    client = redis_server.client()
    worker = taken_as_redis_fills(client, prefix, lambda: start_worker(drill_env, queues="lookups"))
    time.sleep(2)
    assert alive(worker)

    client.delete("filler")
    freed = time.monotonic()
    wait_until(lambda: answered(redis_server, prefix, parked["ids"]) == 1, 30, "its answer", 0.1)
    print(f"\nmessage taken as Redis filled: held by the worker, recorded and answered "
          f"{time.monotonic() - freed:.2f} s after memory was freed")  # fmt: skip
    wait_until(lambda: not held_for_redelivery(redis_server, prefix), 10, "no held message")


def test_a_worker_told_to_stop_while_holding_an_unrecorded_message_exits_and_logs_it(
    drill_env: dict[str, str], redis_server: RedisServer, start_worker: StartWorker
) -> None:
    """The one case where Redis cannot hold a message: taken as Redis filled, still refused
    when the worker is told to stop. The worker stops within its grace (10 s) rather than
    hang, and logs the whole message at CRITICAL so that it can be sent again."""
    prefix = drill_env["ZIPSCORE_REDIS_PREFIX"]
    task_id = str(uuid.uuid4())
    run_producer(drill_env, "raw", "zipcodes.lookup", task_id, "[3000]")
    client = redis_server.client()
    worker = taken_as_redis_fills(client, prefix, lambda: start_worker(drill_env, queues="lookups"))

    started = time.monotonic()
    worker.terminate(timeout=40)
    took = time.monotonic() - started
    assert took < 10 + 10, f"the worker took {took:.1f} s to stop"
    critical = [line for line in worker.text().splitlines() if "CRITICAL" in line]
    assert any("send it again" in line and task_id in line for line in critical), critical
    print(f"\nSIGTERM holding an unrecorded message: exited in {took:.1f} s, message logged")
