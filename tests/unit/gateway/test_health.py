"""/healthz and /readyz: Redis, a worker and its Postgres checked; Retry-After when not
ready."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import fakeredis
import fakeredis.aioredis
import pytest
from fastapi.testclient import TestClient

from producer.client import Client
from producer.gateway import app as gateway
from worker.contract.errors import ErrorCode, ZipscoreError

# -- health -----------------------------------------------------------------------------


def test_healthz(api: TestClient) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}


@pytest.fixture
def fake_redis_pings(monkeypatch: pytest.MonkeyPatch) -> fakeredis.FakeServer:
    server = fakeredis.FakeServer()
    monkeypatch.setattr(
        "worker.contract.result_cache.redis_client", lambda url: fakeredis.FakeRedis(server=server)
    )
    return server


def readiness_client(
    client: Client, monkeypatch: pytest.MonkeyPatch, answer: Callable[[], dict[str, Any]]
) -> TestClient:
    def call(task: str, *args: Any, timeout: float | None = None, **_: Any) -> dict[str, Any]:
        assert task == "health.ping"
        assert timeout == client.settings.gateway_ready_timeout_seconds
        return answer()

    monkeypatch.setattr(client, "call", call)
    return TestClient(gateway.create_app(client.settings, client=client))


def test_ready_when_redis_a_worker_and_postgres_answer(
    client: Client, monkeypatch: pytest.MonkeyPatch, fake_redis_pings: fakeredis.FakeServer
) -> None:
    api = readiness_client(client, monkeypatch, lambda: {"worker": "ok", "postgres": "ok"})
    response = api.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "ready": True,
        "checks": {"redis": "ok", "worker": "ok", "postgres": "ok"},
    }


def test_not_ready_without_a_worker(
    client: Client, monkeypatch: pytest.MonkeyPatch, fake_redis_pings: fakeredis.FakeServer
) -> None:
    def silent() -> dict[str, Any]:
        raise ZipscoreError(ErrorCode.TIMEOUT, "no answer from a worker within 2 s")

    response = readiness_client(client, monkeypatch, silent).get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["worker"].startswith("TIMEOUT")
    assert checks["postgres"] == "unknown"


def test_not_ready_when_redis_or_postgres_is_down(
    client: Client, monkeypatch: pytest.MonkeyPatch, fake_redis_pings: fakeredis.FakeServer
) -> None:
    fake_redis_pings.connected = False
    answer = {"worker": "ok", "postgres": "unreachable (PoolTimeout)"}
    response = readiness_client(client, monkeypatch, lambda: answer).get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"redis": "unreachable (ConnectionError)", **answer}


def test_not_ready_says_when_to_retry(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    def silent(*_: object, **__: object) -> dict[str, Any]:
        raise ZipscoreError(ErrorCode.TIMEOUT, "no answer from a worker within 2 s")

    monkeypatch.setattr(client, "call", silent)
    monkeypatch.setattr(
        "worker.contract.result_cache.redis_client", lambda url: fakeredis.FakeRedis()
    )
    with TestClient(gateway.create_app(client.settings, client=client)) as api:
        response = api.get("/readyz")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
