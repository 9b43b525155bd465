"""The health index with Statbel out of reach, against real worker processes as `make run`
starts them: `zipscore index refresh` fails fast with the cause, nothing is left retrying,
a scheduled refresh that gives up says so in one log line, and the README's offline recipe
(the fixture served on loopback) works."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from ops import celery_worker
from tests.support.console import console
from tests.support.environment import TEST_PREFIX
from tests.support.paths import ROOT
from tests.support.statbel_documents import FIXTURE_MONTHS
from worker.celery_app import create_app
from worker.contract.settings import Settings

DOCUMENT = "bestat-health-index.json"
RETRY_SETTINGS = [f"ZIPSCORE_INDEX_RETRY_{n}" for n in ("MAX_RETRIES", "BACKOFF_SECONDS")]


@pytest.fixture(scope="module")
def closed_port() -> int:
    """A loopback port nothing listens on (a connection is refused) until a test serves it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def worker_env(
    e2e_env: dict[str, str], name: str, port: int, *, default_retries: bool
) -> dict[str, str]:
    env = {
        **e2e_env,
        "ZIPSCORE_REDIS_PREFIX": f"{TEST_PREFIX}-{name}",
        "ZIPSCORE_STATBEL_URL": f"http://127.0.0.1:{port}/{DOCUMENT}",
    }
    if default_retries:  # `make run`'s policy: 6 retries from 5 s, minutes in all
        for variable in (*RETRY_SETTINGS, "ZIPSCORE_INDEX_RETRY_BACKOFF_MAX_SECONDS"):
            env.pop(variable, None)
    return env


@contextlib.contextmanager
def running_worker(env: dict[str, str], log: Path, name: str) -> Iterator[subprocess.Popen[bytes]]:
    argv = celery_worker.command("index", f"{name}-{os.getpid()}", concurrency=1)
    try:
        process = celery_worker.start(env, log, argv)
    except celery_worker.WorkerDidNotStart as exc:
        pytest.fail(str(exc))
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
        client = redis.Redis.from_url(env.get("ZIPSCORE_REDIS_URL", "redis://127.0.0.1:6379/0"))
        for key in client.scan_iter(match=f"{env['ZIPSCORE_REDIS_PREFIX']}*", count=1000):
            client.delete(key)


@pytest.fixture(scope="module")
def offline(
    e2e_env: dict[str, str], closed_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[dict[str, str], Path]]:
    """A worker with the default retry policy whose Statbel URL refuses connections."""
    env = worker_env(e2e_env, "offline", closed_port, default_retries=True)
    log = tmp_path_factory.mktemp("offline") / "worker.log"
    with running_worker(env, log, "offline"):
        yield env, log


@pytest.fixture(autouse=True)
def empty_history(database: str) -> Iterator[None]:
    with psycopg.connect(os.environ["ZIPSCORE_DATABASE_URL"], autocommit=True) as conn:
        conn.execute("TRUNCATE health_index, index_refreshes")
        yield
        conn.execute("TRUNCATE health_index, index_refreshes")


def test_an_offline_refresh_answers_the_cause_at_once_and_leaves_nothing_retrying(
    offline: tuple[dict[str, str], Path], closed_port: int
) -> None:
    """It used to wait 60 s for TIMEOUT while the worker retried for minutes, and each try
    left one more retrying refresh behind."""
    env, log = offline
    before = console("index", env=env)
    assert before.stderr.startswith("zipscore: INDEX_UNAVAILABLE: no health index for base")

    started = time.monotonic()
    done = console("index", "refresh", "--timeout", "20", env=env)
    elapsed = time.monotonic() - started

    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f"zipscore: INDEX_UNAVAILABLE: Statbel (127.0.0.1:{closed_port}) unreachable:"
        " ConnectError '[Errno 111] Connection refused'\n"
    )
    assert elapsed < 15  # the default Statbel timeout is 10 s; a refused port is at once
    time.sleep(1)  # a retry would be sent back to the queue as the try ends
    broker = redis.Redis.from_url(env.get("ZIPSCORE_REDIS_URL", "redis://127.0.0.1:6379/0"))
    prefix = env["ZIPSCORE_REDIS_PREFIX"]
    held = broker.hvals(f"{prefix}:unacked")
    assert not [m for m in held if b"index.refresh" in m]  # no retry waiting on its countdown
    assert broker.llen(f"{prefix}:index") == 0
    text = log.read_text()
    assert " retry: Retry in " not in text
    assert "health index refresh failed (tried once, not retried): Statbel" in text


def test_a_source_that_never_answers_is_given_up_within_the_statbel_timeout(
    offline: tuple[dict[str, str], Path], closed_port: int
) -> None:
    """A port that takes the connection and then stays silent: the slowest offline case."""
    env, _ = offline
    with socket.socket() as silent:
        silent.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        silent.bind(("127.0.0.1", closed_port))
        silent.listen(8)  # the kernel completes the handshake; nothing is ever read or sent
        started = time.monotonic()
        done = console("index", "refresh", "--timeout", "30", env=env)
        elapsed = time.monotonic() - started
    assert done.returncode == 1
    assert done.stderr == (
        f"zipscore: INDEX_UNAVAILABLE: Statbel (127.0.0.1:{closed_port}) unreachable:"
        " ReadTimeout 'timed out'\n"
    )
    assert 9 < elapsed < 15  # the default Statbel timeout is 10 s


def test_the_readme_recipe_serves_the_fixture_and_the_index_answers(
    offline: tuple[dict[str, str], Path], closed_port: int
) -> None:
    env, _ = offline
    server = subprocess.Popen(
        [sys.executable, "-m", "ops.statbel_fixture", "--port", str(closed_port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        served = server.stdout.readline()
        assert served.endswith(f"at http://127.0.0.1:{closed_port}/{DOCUMENT}\n"), served
        refreshed = console("index", "refresh", env=env)
        latest = console("index", env=env)
    finally:
        server.terminate()
        server.wait(10)
    assert (refreshed.returncode, refreshed.stderr) == (0, ""), refreshed.stderr
    assert refreshed.stdout == (
        f"stored {FIXTURE_MONTHS} months ({FIXTURE_MONTHS} new, 0 changed)"
        " for base years 1996, 2004, 2013, 2025\n"
    )
    assert (latest.returncode, latest.stdout) == (0, "135.61 (2004 = 100, 2021-09)\n")


def test_a_scheduled_refresh_that_gives_up_is_one_log_line(
    e2e_env: dict[str, str], closed_port: int, tmp_path: Path
) -> None:
    """It used to end in Celery's 'raised unexpected' with a 34-line traceback."""
    env = worker_env(e2e_env, "giveup", closed_port, default_retries=False)
    env.update({RETRY_SETTINGS[0]: "2", RETRY_SETTINGS[1]: "1"})
    log = tmp_path / "worker.log"
    producer = create_app(Settings(redis_prefix=env["ZIPSCORE_REDIS_PREFIX"]))
    with running_worker(env, log, "giveup"):
        result = producer.send_task("index.refresh", kwargs={"if_empty": True}, queue="index")
        result.get(timeout=30, propagate=False)  # what beat sends on starting
        assert result.state == "FAILURE"
        time.sleep(0.5)  # the log line after the result
    lines = [line for line in log.read_text().splitlines() if result.id in line]
    errors = [line for line in lines if re.search(r" (ERROR|CRITICAL) ", line)]
    assert len(errors) == 1, lines
    assert errors[0].endswith(
        f"health index refresh failed after 2 retries: Statbel (127.0.0.1:{closed_port})"
        " unreachable: ConnectError '[Errno 111] Connection refused';"
        " the previous values stay in service"
    )
    assert len([line for line in lines if " retry: Retry in " in line]) == 2
    assert "Traceback" not in log.read_text()
