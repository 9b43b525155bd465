"""Exactly one beat: two real `celery -A worker beat` processes on the same Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.support.environment import TEST_PREFIX
from tests.support.paths import ROOT
from worker.contract.settings import get_settings

BEAT_PREFIX = f"{TEST_PREFIX}-beat"


@pytest.fixture
def beat_env(services: None, tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {
        **os.environ,
        "ZIPSCORE_REDIS_PREFIX": BEAT_PREFIX,  # no worker consumes these queues
        "ZIPSCORE_BEAT_LOCK_TTL_SECONDS": "3",
        "PYTHONUNBUFFERED": "1",
    }
    yield env
    client = redis.Redis.from_url(get_settings().broker)
    for key in client.scan_iter(match=f"{BEAT_PREFIX}*", count=1000):
        client.delete(key)


@pytest.fixture
def start_beat(
    beat_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[[str], tuple[subprocess.Popen[bytes], Path]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str) -> tuple[subprocess.Popen[bytes], Path]:
        log = tmp_path / f"{name}.log"
        env = {**beat_env, "ZIPSCORE_BEAT_SCHEDULE_DIR": str(tmp_path / name)}
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "worker", "beat", "--loglevel", "INFO"],
                cwd=ROOT,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        started.append(process)
        return process, log

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def wait_for(log: Path, text: str, process: subprocess.Popen[bytes], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while text not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"no {text!r} in the beat log:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


def queued_refreshes(expected: int) -> int:
    """The refreshes queued, once `expected` are or after 5 s: beat logs that it took the
    lock just before it sends the start-up refresh, so the log line can come first."""
    client = redis.Redis.from_url(get_settings().broker)
    deadline = time.monotonic() + 5
    while (queued := int(client.llen(f"{BEAT_PREFIX}:index"))) < expected:
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return queued


def test_a_second_beat_stands_by_and_takes_over_when_the_first_stops(
    start_beat: Callable[[str], tuple[subprocess.Popen[bytes], Path]], tmp_path: Path
) -> None:
    first, first_log = start_beat("first")
    wait_for(first_log, "acquired the beat lock", first)
    second, second_log = start_beat("second")
    wait_for(second_log, "another beat holds the lock", second)
    assert queued_refreshes(1) == 1  # the start-up refresh, from the active beat only
    assert any(p.name.startswith("celerybeat-schedule") for p in (tmp_path / "first").iterdir())

    first.send_signal(signal.SIGTERM)
    assert first.wait(15) == 0
    wait_for(second_log, "acquired the beat lock", second)
    assert queued_refreshes(2) == 2
    assert "acquired" not in second_log.read_text().split("another beat holds")[0]
    second.send_signal(signal.SIGTERM)
    assert second.wait(15) == 0
