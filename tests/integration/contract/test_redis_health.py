"""A Redis that may evict queues, or is (nearly) full: `doctor`, `/readyz` and producers say so.

Each test runs its own redis-server (ops/drills/servers.py) with a small `maxmemory`:
`zipscore doctor` and the gateway's `/readyz` name an eviction policy other than
`noeviction` (BROKER_EVICTION_POLICY) and a Redis at 90 % of its maxmemory or more
(BROKER_MEMORY_PRESSURE), also where CONFIG is disabled; a producer whose message Redis
refuses for lack of memory says so (BACKEND_UNAVAILABLE), not "the queue is unreachable".
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import signals
from click.testing import CliRunner
from fastapi.testclient import TestClient
from pydantic import RedisDsn

from ops.drills.servers import RedisServer
from producer.cli.main import cli
from producer.client import Client
from producer.gateway import app as gateway
from tests.support.console import console
from tests.support.settings import make_settings
from worker.contract.redis_health import EVICTION_POLICY, MEMORY_PRESSURE
from worker.contract.result_cache import LOOKUP, ResultCache
from worker.database import admin

MAXMEMORY = 20 * 1024 * 1024
StartRedis = Callable[..., RedisServer]


@pytest.fixture
def start_redis(tmp_path: Path, services: None) -> Iterator[StartRedis]:
    """Start redis-servers with extra arguments; all stopped at the end."""
    started: list[RedisServer] = []

    def start(*options: str) -> RedisServer:
        server = RedisServer(tmp_path / f"redis-{len(started)}", options=options)
        started.append(server)
        server.start()
        return server

    try:
        yield start
    finally:
        for server in started:
            server.close()


def fill_to(server: RedisServer, share: float) -> None:
    """Grow Redis's used memory to `share` of its maxmemory (past it when over 1)."""
    client = server.client()

    def used() -> int:
        return int(client.info("memory")["used_memory"])

    # Keys of 256 KiB: the allocator rounds one large string up by as much as a quarter.
    step = 256 * 1024
    while used() < min(share, 0.97) * MAXMEMORY:
        client.setrange(f"filler:{used()}", step - 1, b"x")
    if share > 1:  # one write still accepted below maxmemory takes Redis past it
        client.setrange("filler:last", int((share - 0.97) * MAXMEMORY), b"x")
    assert used() >= share * MAXMEMORY


def limited(policy: str, *more: str) -> tuple[str, ...]:
    return ("--maxmemory", str(MAXMEMORY), "--maxmemory-policy", policy, *more)


def doctor_on(server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    settings = make_settings(redis_url=RedisDsn(server.url))
    monkeypatch.setattr(admin, "get_settings", lambda: settings)
    return admin.doctor()


def test_doctor_reports_a_policy_that_evicts_queues(
    start_redis: StartRedis, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_redis(*limited("allkeys-lru"))
    report = doctor_on(server, monkeypatch)
    assert report["ok"] is False
    assert report["services"]["broker"].startswith(f"{EVICTION_POLICY}: maxmemory-policy is "
                                                   "allkeys-lru")  # fmt: skip
    assert {(p["service"], p["code"]) for p in report["problems"]} == {
        ("broker", EVICTION_POLICY),
        ("cache", EVICTION_POLICY),
    }
    assert "hint" not in report["services"]  # nothing to start: a setting to change

    # The command: one line per service, exit status 1.
    done = CliRunner().invoke(cli, ["doctor"])
    assert done.exit_code == 1
    assert f"broker: {EVICTION_POLICY}: maxmemory-policy is allkeys-lru" in done.output


def test_doctor_reads_the_policy_from_info_where_config_is_disabled(
    start_redis: StartRedis, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_redis(*limited("volatile-lru", "--rename-command", "CONFIG", ""))
    report = doctor_on(server, monkeypatch)
    assert [p["code"] for p in report["problems"]] == [EVICTION_POLICY] * 2
    assert "maxmemory-policy is volatile-lru" in report["services"]["broker"]


def test_doctor_reports_memory_pressure_and_is_fine_below_it(
    start_redis: StartRedis, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_redis(*limited("noeviction"))
    fill_to(server, 0.5)
    calm = doctor_on(server, monkeypatch)
    assert calm["ok"] is True
    assert "problems" not in calm, calm
    fill_to(server, 0.95)
    report = doctor_on(server, monkeypatch)
    assert report["ok"] is False
    assert [p["code"] for p in report["problems"]] == [MEMORY_PRESSURE] * 2
    message = report["problems"][0]["message"]
    assert "of its maxmemory 20.0 MB (9" in message, message


def readyz_on(server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> tuple[int, Any]:
    settings = make_settings(redis_url=RedisDsn(server.url))
    client = Client(settings, timeout=1.0)
    monkeypatch.setattr(client, "call", lambda *a, **k: {"worker": "ok", "postgres": "ok"})
    response = TestClient(gateway.create_app(settings, client=client)).get("/readyz")
    return response.status_code, response.json()


def test_readyz_reports_an_evicting_policy_and_memory_pressure(
    start_redis: StartRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    evicting = start_redis(*limited("allkeys-lru"))
    status, body = readyz_on(evicting, monkeypatch)
    assert status == 503
    assert body["ready"] is False
    assert body["checks"]["redis"].startswith(f"{EVICTION_POLICY}: ")

    full = start_redis(*limited("noeviction"))
    assert readyz_on(full, monkeypatch) == (
        200,
        {"ready": True, "checks": {"redis": "ok", "worker": "ok", "postgres": "ok"}},
    )
    fill_to(full, 0.95)
    status, body = readyz_on(full, monkeypatch)
    assert status == 503
    assert body["checks"]["redis"].startswith(f"{MEMORY_PRESSURE}: Redis uses ")


def test_a_producer_refused_for_lack_of_memory_says_so(start_redis: StartRedis) -> None:
    server = start_redis(*limited("noeviction"))
    fill_to(server, 1.05)
    env = {**os.environ, "ZIPSCORE_REDIS_URL": server.url, "ZIPSCORE_LOOKUP_TIMEOUT": "3"}
    done = console("lookup", "9000", "--json", env=env)
    assert done.returncode == 1, done.stderr
    error = json.loads(done.stdout)["error"]
    assert error["code"] == "BACKEND_UNAVAILABLE"
    assert error["message"].startswith("the broker is out of memory (maxmemory reached)")
    line = f"zipscore: BACKEND_UNAVAILABLE: {error['message']}"
    assert done.stderr.strip().splitlines() == [line]


def test_a_ready_worker_warns_of_an_evicting_broker(
    start_redis: StartRedis, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    server = start_redis(*limited("allkeys-lru"))
    settings = make_settings(redis_url=RedisDsn(server.url))
    monkeypatch.setattr("worker.contract.settings.get_settings", lambda: settings)
    with caplog.at_level(logging.WARNING, logger="worker.broker.readiness"):
        signals.worker_ready.send(sender=None)
    assert [record.getMessage() for record in caplog.records] == [
        f"broker: {EVICTION_POLICY}: maxmemory-policy is allkeys-lru, so Redis may evict "
        "queued messages and results when full; set maxmemory-policy noeviction"
    ]


def test_the_lookup_cache_is_skipped_when_redis_is_out_of_memory(
    start_redis: StartRedis,
) -> None:
    server = start_redis(*limited("noeviction"))
    cache = ResultCache(server.client(), "oom", 60)
    cache.publish_version(3)
    fill_to(server, 1.05)
    answer = {"zipcode": 9000, "risk_factor": "B", "exists": True}
    # Raised OutOfMemoryError, failing the lookup: the answer is given, just not cached.
    assert cache.put(3, LOOKUP, 9000, answer) == 3
    assert cache.get(LOOKUP, 9000) is None
