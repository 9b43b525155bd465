"""Drills: faults, load and hostile input against real processes the test owns.

Every test here carries the `drill` marker. `make test` runs them scaled down; `make drills`
sets ZIPSCORE_DRILLS=full for the full versions (`scaled(ci, full)` of tests/support/drills.py
picks the figure).
Each drill gets a Redis of its own (redis-server on a free port, append-only file on) and a
Redis prefix; the database is the run's own (tests/support/services.py) unless a drill needs a
Postgres it can stop, which `private_postgres` gives.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ops.drills.servers import PostgresCluster, RedisServer, WorkerProcess
from tests.support.drills import StartWorker
from tests.support.environment import TEST_DATABASE_URL, TEST_PREFIX
from tests.support.paths import SAMPLE_TABLE
from worker.database import migrations
from worker.lookups import zipcodes
from worker.lookups.risk_table import parse_text


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.drill)


@pytest.fixture
def redis_server(tmp_path: Path, services: None) -> Iterator[RedisServer]:
    """A Redis of the test's own, append-only, stopped at the end."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def drill_env(redis_server: RedisServer, database: str) -> dict[str, str]:
    """The environment of this drill's workers and producers: its own Redis and prefix."""
    return {
        **os.environ,
        "ZIPSCORE_REDIS_URL": redis_server.url,
        "ZIPSCORE_REDIS_PREFIX": f"{TEST_PREFIX}-drill-{uuid.uuid4().hex[:6]}",
        "ZIPSCORE_DATABASE_URL": TEST_DATABASE_URL,
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[StartWorker]:
    """Start workers (`WorkerProcess`) that are all stopped at the end of the test."""
    started: list[WorkerProcess] = []

    def start(env: dict[str, str], **options: Any) -> WorkerProcess:
        worker = WorkerProcess(env, tmp_path / f"worker-{len(started)}.log", **options)
        started.append(worker)
        return worker

    try:
        yield start
    finally:
        for worker in started:
            worker.close()


@pytest.fixture(scope="session")
def private_postgres(services: None) -> Iterator[PostgresCluster]:
    """A Postgres cluster of the drills' own, password auth, migrated and loaded; stoppable."""
    cluster = PostgresCluster(password=f"pw-{uuid.uuid4().hex}")
    try:
        cluster.start()
        with contextlib.closing(cluster.connect()) as conn:
            migrations.migrate(conn)
            zipcodes.load_rules(conn, parse_text(SAMPLE_TABLE.read_text()))
        yield cluster
    finally:
        cluster.close()
