"""Drill: Postgres goes away while a lookup needs it, and comes back.

Given a worker on a Postgres cluster of the drills' own, when the cluster stops (a fast
shutdown cuts every pooled connection), then a cold lookup's task (its worker process has
no copy of the risk table yet) retries with backoff (the worker log says so), nothing is
cached from the failed attempts, and when Postgres is back the same task answers, the
producer gets the right factor within its timeout, and the answer is cached. A warm worker
(its copy taken) answers lookups through the outage without Postgres.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from ops.drills.servers import PostgresCluster, RedisServer, wait_until
from tests.support.console import console_process
from tests.support.drills import StartWorker, run_producer, scaled
from tests.support.portfolios import SAMPLE


def cached_lookups(server: RedisServer, prefix: str, zipcode: int) -> list[bytes]:
    return list(server.client().scan_iter(match=f"{prefix}:cache:*:lookup:{zipcode}"))


def test_lookups_retry_through_a_database_outage(
    drill_env: dict[str, str],
    redis_server: RedisServer,
    private_postgres: PostgresCluster,
    start_worker: StartWorker,
    tmp_path: Path,
) -> None:
    env = {
        **drill_env,
        "ZIPSCORE_DATABASE_URL": private_postgres.url(),
        "ZIPSCORE_DB_CONNECT_TIMEOUT": "1",
        "ZIPSCORE_LOOKUP_TIMEOUT": "60",
    }
    prefix = env["ZIPSCORE_REDIS_PREFIX"]
    worker = start_worker(env, queues="lookups", concurrency=1)
    # A listing queries Postgres (the pool is connected) but takes no copy of the table.
    listing = console_process(env, "zipcodes", "--risk-factor", "A")
    assert listing.communicate(timeout=60)[0].startswith("1320 ")

    private_postgres.stop()
    try:
        started = time.monotonic()
        asking = console_process(env, "lookup", "4321", "--json")  # cold: needs the database
        wanted = scaled(1, 3)  # retries seen before Postgres comes back
        wait_until(
            lambda: worker.text().count("retry: Retry in") >= wanted, 60, "retries in the log"
        )
        assert cached_lookups(redis_server, prefix, 4321) == []  # nothing from a failure
        assert asking.poll() is None  # still waiting, within its timeout
    finally:
        private_postgres.start()
    outage = time.monotonic() - started

    stdout, stderr = asking.communicate(timeout=90)
    answered = time.monotonic() - started
    assert asking.returncode == 0, stderr
    factor = SAMPLE.get("4321")
    assert json.loads(stdout) == {"zipcode": 4321, "risk_factor": factor, "exists": bool(factor)}
    assert len(cached_lookups(redis_server, prefix, 4321)) == 1
    retries = re.findall(r"retry: Retry in (\d+)s", worker.text())
    assert retries, "the task was never retried"
    assert worker.process.poll() is None
    print(
        f"database outage {outage:.1f} s: {len(retries)} retries (countdowns "
        f"{', '.join(retries)} s), answered {answered:.1f} s after the outage began"
    )


def test_a_warm_worker_answers_lookups_through_a_database_outage(
    drill_env: dict[str, str], private_postgres: PostgresCluster, start_worker: StartWorker
) -> None:
    # The default connect timeout (5 s): a lookup that waited on it would show.
    env = {**drill_env, "ZIPSCORE_DATABASE_URL": private_postgres.url(),
           "ZIPSCORE_LOOKUP_TIMEOUT": "20"}  # fmt: skip
    worker = start_worker(env, queues="lookups", concurrency=1)
    warm = console_process(env, "lookup", "9000")  # the worker process copies the table
    assert warm.communicate(timeout=60)[0] == "B\n"
    private_postgres.stop()
    try:
        time.sleep(1.5)  # past the copy's version check interval: the next check fails
        asked = [console_process(env, "lookup", str(z), "--json") for z in SPREAD]
        answers = [json.loads(ask.communicate(timeout=30)[0] or "null") for ask in asked]
        # Then a run of uncached lookups through one client, each timed.
        run = run_producer(env, "lookups", str(scaled(20, 200)), "4400")
    finally:
        private_postgres.start()
    factors = [SAMPLE.get(str(z)) for z in SPREAD]
    assert answers == [
        {"zipcode": z, "risk_factor": f, "exists": f is not None}
        for z, f in zip(SPREAD, factors, strict=True)
    ]
    assert run["codes"] == {"ok": scaled(20, 200)}
    # Well under the pool's 5 s wait: at most one version check (0.5 s) a second waits.
    assert run["slowest"] < 1.5, run
    assert "retry: Retry in" not in worker.text()
    print(f"database outage, warm worker: {len(SPREAD) + scaled(20, 200)} lookups answered "
          f"from its copy, slowest {run['slowest'] * 1000:.0f} ms")  # fmt: skip


SPREAD = (1000, 1501, 4321, 9170)


def test_a_producer_with_a_short_timeout_says_timeout_while_the_database_is_down(
    drill_env: dict[str, str],
    private_postgres: PostgresCluster,
    start_worker: StartWorker,
) -> None:
    env = {**drill_env, "ZIPSCORE_DATABASE_URL": private_postgres.url(),
           "ZIPSCORE_DB_CONNECT_TIMEOUT": "1", "ZIPSCORE_LOOKUP_TIMEOUT": "2"}  # fmt: skip
    start_worker(env, queues="lookups", concurrency=1)
    private_postgres.stop()
    try:
        started = time.monotonic()
        done = console_process(env, "lookup", "4322", "--json")
        stdout, _ = done.communicate(timeout=30)
        waited = time.monotonic() - started
    finally:
        private_postgres.start()
    assert done.returncode == 1
    assert json.loads(stdout)["error"]["code"] == "TIMEOUT"
    assert waited < 2 + 6, f"the producer waited {waited:.1f} s"
