"""End-to-end tier: a real `celery -A worker worker` process and the `zipscore` console script.

The processes get this run's database and a Redis prefix of their own, so the embedded
worker of the integration tier never takes their messages.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest
import redis

from ops import celery_worker
from tests.support.environment import E2E_PREFIX


@pytest.fixture(scope="session")
def e2e_env(database: str) -> dict[str, str]:
    return {**os.environ, "ZIPSCORE_REDIS_PREFIX": E2E_PREFIX, "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="session")
def worker_process(
    e2e_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[subprocess.Popen[bytes]]:
    """A prefork worker with two processes, as `make run` starts it; stopped with SIGTERM."""
    log = tmp_path_factory.mktemp("e2e") / "worker.log"
    argv = celery_worker.command("lookups,index", f"e2e-{os.getpid()}")
    try:
        process = celery_worker.start(e2e_env, log, argv)
    except celery_worker.WorkerDidNotStart as exc:
        pytest.fail(str(exc))
    yield process
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
    client = redis.Redis.from_url(e2e_env.get("ZIPSCORE_REDIS_URL", "redis://127.0.0.1:6379/0"))
    for key in client.scan_iter(match=f"{E2E_PREFIX}*", count=1000):
        client.delete(key)
