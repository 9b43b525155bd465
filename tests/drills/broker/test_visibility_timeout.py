"""Drill: a task that runs longer than the broker's visibility timeout runs twice.

kombu's Redis transport records every message it delivers in an `unacked` hash, indexed by
the time of delivery, until the task acknowledges it (zipscore acknowledges late, after the
task). A sweep (`restore_visible`) puts every message older than the visibility timeout back
on its queue, whether or not a worker is still running it: another worker takes it and the
task runs a second time, while the first run goes on. zipscore's settings refuse a
visibility timeout under twice the hard time limit plus the longest retry countdown
(`worker/contract/settings/`), so no task may outlive it.

Given two workers on the drill's own Redis (`-c 1`: a worker running the task takes nothing
else), both sweeping for expired messages every second (`ops.drills.fast_restore`), and
`drill.hold` sleeping `HOLD_SECONDS`:

- with the guard bypassed (`ops.drills.short_visibility`: 4 s, under the 6 s hold), the
  task is delivered again after about the visibility timeout, to the other worker, while
  the first run goes on: it runs twice;
- with the settings' own visibility timeout (60 s, the smallest the guard accepts with
  these time limits, above the hold), it runs once and nothing is left unacknowledged.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

import pydantic
import pytest

from ops.drills.drill_timing import SWEEP_SECONDS, VISIBILITY_TIMEOUT_SECONDS
from ops.drills.servers import RedisServer, WorkerProcess, wait_until
from tests.support.drills import StartWorker, held_for_redelivery, run_producer, scaled
from worker.contract.settings import Settings

# Longer than the lowered timeout, shorter than twice it: the first run's acknowledgement
# removes the message from the unacked index before its second delivery is due again, so a
# bypassed worker pair runs it exactly twice.
HOLD_SECONDS = VISIBILITY_TIMEOUT_SECONDS + 2
# Guarded settings: the hold fits in the soft time limit, and the guard accepts 60 s
# (2 x (10 s hard limit + 20 s longest task retry countdown)).
GUARDED = {
    "ZIPSCORE_VISIBILITY_TIMEOUT_SECONDS": "60",
    "ZIPSCORE_TASK_SOFT_TIME_LIMIT": str(HOLD_SECONDS + 2),
    "ZIPSCORE_TASK_TIME_LIMIT": str(HOLD_SECONDS + 4),
    "ZIPSCORE_INDEX_RETRY_BACKOFF_MAX_SECONDS": "1",
}
LOG_TIME = "%Y-%m-%d %H:%M:%S,%f"


@dataclass(frozen=True)
class Run:
    """One run of the task in one worker's log: when it was received and when it ended."""

    worker: int
    received: datetime
    succeeded: datetime | None


def runs(workers: list[WorkerProcess], task_id: str) -> list[Run]:
    """Every delivery of `task_id` in the workers' logs, in the order they were received."""
    found = []
    for number, worker in enumerate(workers):
        stamps: dict[str, list[datetime]] = {"received": [], "succeeded": []}
        for line in worker.text().splitlines():
            event = re.search(
                rf"Task drill\.hold\[{re.escape(task_id)}\] (received|succeeded)", line
            )
            if event:
                stamps[event.group(1)].append(datetime.strptime(line[:23], LOG_TIME))
        ends: list[datetime | None] = [*stamps["succeeded"]]
        ends += [None] * (len(stamps["received"]) - len(ends))
        found += [Run(number, r, s) for r, s in zip(stamps["received"], ends, strict=True)]
    return sorted(found, key=lambda run: run.received)


def two_workers(
    env: dict[str, str], start_worker: StartWorker, modules: str
) -> list[WorkerProcess]:
    extra = ("-I", f"ops.drills.drill_tasks,{modules}")
    return [start_worker(env, queues="lookups", concurrency=1, extra=extra) for _ in range(2)]


def hold(env: dict[str, str]) -> str:
    task_id = f"hold-{uuid.uuid4().hex[:12]}"
    run_producer(env, "raw", "drill.hold", task_id, json.dumps([HOLD_SECONDS]))
    return task_id


def finished(workers: list[WorkerProcess], task_id: str, count: int) -> bool:
    done = [run for run in runs(workers, task_id) if run.succeeded is not None]
    return len(done) >= count


def drill_settings(visibility_timeout: int) -> Settings:
    """zipscore's settings with the drill's time limits (the environment left out)."""
    return Settings.model_validate(
        {
            "visibility_timeout_seconds": visibility_timeout,
            "task_soft_time_limit": GUARDED["ZIPSCORE_TASK_SOFT_TIME_LIMIT"],
            "task_time_limit": GUARDED["ZIPSCORE_TASK_TIME_LIMIT"],
            "index_retry_backoff_max_seconds": GUARDED["ZIPSCORE_INDEX_RETRY_BACKOFF_MAX_SECONDS"],
        }
    )


def test_the_settings_refuse_the_drill_s_visibility_timeout_and_accept_the_guarded_one() -> None:
    with pytest.raises(pydantic.ValidationError, match="visibility_timeout_seconds"):
        drill_settings(VISIBILITY_TIMEOUT_SECONDS)
    guarded = drill_settings(int(GUARDED["ZIPSCORE_VISIBILITY_TIMEOUT_SECONDS"]))
    assert guarded.visibility_timeout_seconds > HOLD_SECONDS
    assert VISIBILITY_TIMEOUT_SECONDS < HOLD_SECONDS < 2 * VISIBILITY_TIMEOUT_SECONDS


def held_twice(env: dict[str, str], workers: list[WorkerProcess], server: RedisServer) -> float:
    """Send one hold; check it ran twice, the second run starting during the first.

    Returns how long after the first run the second one started, in seconds.
    """
    task_id = hold(env)
    wait_until(lambda: finished(workers, task_id, 2), 4 * HOLD_SECONDS, "the second run")
    first, second = runs(workers, task_id)
    assert first.worker != second.worker  # the busy worker takes nothing else
    assert first.succeeded is not None
    # Delivered again once the message is older than the timeout (at the next sweep),
    # while the first run is still going.
    delay = (second.received - first.received).total_seconds()
    assert delay >= VISIBILITY_TIMEOUT_SECONDS - 0.5
    assert second.received < first.succeeded
    time.sleep(SWEEP_SECONDS + 1)  # a third delivery would be due by now
    assert len(runs(workers, task_id)) == 2
    assert held_for_redelivery(server, env["ZIPSCORE_REDIS_PREFIX"]) == set()
    overlap = (first.succeeded - second.received).total_seconds()
    print(f"visibility timeout {VISIBILITY_TIMEOUT_SECONDS} s, hold {HOLD_SECONDS} s: ran "
          f"twice, the second run started {delay:.2f} s after the first, {overlap:.2f} s "
          "before the first ended")  # fmt: skip
    return delay


def test_a_task_longer_than_a_bypassed_visibility_timeout_runs_twice(
    drill_env: dict[str, str], redis_server: RedisServer, start_worker: StartWorker
) -> None:
    env = {**drill_env, **GUARDED}  # valid settings: only the drill module goes under them
    workers = two_workers(env, start_worker, "ops.drills.short_visibility")
    assert all("visibility timeout lowered to" in worker.text() for worker in workers)
    for _ in range(scaled(1, 3)):
        held_twice(env, workers, redis_server)


def test_with_the_guarded_visibility_timeout_it_runs_once(
    drill_env: dict[str, str], redis_server: RedisServer, start_worker: StartWorker
) -> None:
    env = {**drill_env, **GUARDED}
    prefix = env["ZIPSCORE_REDIS_PREFIX"]
    workers = two_workers(env, start_worker, "ops.drills.fast_restore")
    task_id = hold(env)
    wait_until(lambda: finished(workers, task_id, 1), 4 * HOLD_SECONDS, "the run")
    time.sleep(SWEEP_SECONDS + 1)  # as long after the end as the bypassed drill waits
    found = runs(workers, task_id)
    assert len(found) == 1, found
    only = found[0]
    assert only.succeeded is not None
    ran = (only.succeeded - only.received).total_seconds()
    assert ran >= HOLD_SECONDS - 0.5  # it did hold past the lowered timeout of the other drill
    assert held_for_redelivery(redis_server, prefix) == set()  # acknowledged: no redelivery
    print(f"visibility timeout 60 s, hold {HOLD_SECONDS} s: ran once ({ran:.2f} s)")
