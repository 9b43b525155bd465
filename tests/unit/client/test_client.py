"""The producer's client: validation before sending, the cache fast path, errors as codes."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import celery.exceptions
import kombu.exceptions
import pytest
import redis

from producer.client import Client
from tests.support.fakes import DictZipcodeStore
from worker.contract.answers import LookupResult
from worker.contract.errors import ErrorCode, ZipscoreError
from worker.contract.result_cache import ResultCache


@pytest.fixture
def client(cache: ResultCache) -> Client:
    return Client(cache=cache, timeout=1.0)


def test_a_miss_goes_through_the_queue_and_a_repeat_hits_the_cache(
    client: Client, eager: list[tuple[str, tuple[Any, ...]]], store: DictZipcodeStore
) -> None:
    first = client.lookup(9000)
    second = client.lookup("9000")
    assert first == second == LookupResult(zipcode=9000, risk_factor="B", exists=True)
    assert eager == [("zipcodes.lookup", (9000,))]
    assert store.queries == 1


def test_listing_by_risk_factor(client: Client, eager: list[tuple[str, tuple[Any, ...]]]) -> None:
    listing = client.by_risk_factor("b")
    assert listing.risk_factor == "B"
    assert listing.count == len(listing.zipcodes) == 171
    assert eager == [("zipcodes.by_risk_factor", ("B",))]


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda c: c.lookup(999), ErrorCode.ZIPCODE_NOT_VALID),
        (lambda c: c.lookup("9000 OR 1=1"), ErrorCode.ZIPCODE_NOT_VALID),
        (lambda c: c.by_risk_factor("A' OR '1'='1"), ErrorCode.RISK_FACTOR_NOT_VALID),
    ],
)
def test_bad_input_is_refused_before_anything_is_sent(
    client: Client, eager: list[tuple[str, tuple[Any, ...]]], call: Any, code: ErrorCode
) -> None:
    with pytest.raises(ZipscoreError) as caught:
        call(client)
    assert caught.value.code is code
    assert eager == []


class _Result:
    id = "stub-task-id"

    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome

    def get(self, **_: Any) -> Any:
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


@pytest.mark.parametrize(
    ("outcome", "code"),
    [
        (celery.exceptions.TimeoutError("late"), ErrorCode.TIMEOUT),
        # Expired unrun (a retry due after the wait): the drill saw BACKEND_UNAVAILABLE.
        (celery.exceptions.TaskRevokedError("expired"), ErrorCode.TIMEOUT),
        (kombu.exceptions.OperationalError("no broker"), ErrorCode.BACKEND_UNAVAILABLE),
        (redis.ConnectionError("refused"), ErrorCode.BACKEND_UNAVAILABLE),
        (RuntimeError("task blew up"), ErrorCode.BACKEND_UNAVAILABLE),
        ("not a dict", ErrorCode.BACKEND_UNAVAILABLE),
        ({"error": {"code": "ZIPCODE_NOT_VALID", "message": "m"}}, ErrorCode.ZIPCODE_NOT_VALID),
    ],
)
def test_failures_become_contract_errors(
    client: Client, monkeypatch: pytest.MonkeyPatch, outcome: Any, code: ErrorCode
) -> None:
    monkeypatch.setattr(client.app, "send_task", lambda *a, **k: _Result(outcome))
    with pytest.raises(ZipscoreError) as caught:
        client.lookup(9000)
    assert caught.value.code is code


def test_a_send_that_fails_is_backend_unavailable(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_: Any, **__: Any) -> None:
        raise RuntimeError("Retry limit exceeded while trying to reconnect")

    monkeypatch.setattr(client.app, "send_task", refuse)
    with pytest.raises(ZipscoreError) as caught:
        client.lookup(9000)
    assert caught.value.code is ErrorCode.BACKEND_UNAVAILABLE
    assert "unreachable" in caught.value.message


def test_a_question_expires_when_its_wait_ends_a_refresh_does_not(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[tuple[str, Any]] = []

    def send_task(name: str, *, args: Any = (), expires: Any = None, **_: Any) -> _Result:
        sent.append((name, expires))
        if name == "zipcodes.lookup":
            return _Result({"zipcode": 9000, "risk_factor": "B", "exists": True})
        report = {"months_stored": 1, "months_new": 0, "months_changed": 0}
        return _Result({**report, "base_years": [2004], "refreshed_at": "2026-01-01T00:00:00"})

    monkeypatch.setattr(client.app, "send_task", send_task)
    client.lookup(9000)
    client.lookup(9001, timeout=0.25)
    client.refresh_index(timeout=5)
    assert sent == [("zipcodes.lookup", 1.0), ("zipcodes.lookup", 0.25), ("index.refresh", None)]


def test_an_unreachable_cache_falls_back_to_the_queue(
    eager: list[tuple[str, tuple[Any, ...]]], store: DictZipcodeStore
) -> None:
    class DownRedis:
        def get(self, key: str) -> None:
            raise redis.ConnectionError("down")

    client = Client(cache=ResultCache(DownRedis(), "x", 60), timeout=1.0)  # type: ignore[arg-type]
    assert client.lookup(9000).risk_factor == "B"
    assert eager == [("zipcodes.lookup", (9000,))]


def test_the_producer_imports_no_database_driver_or_http_client() -> None:
    code = (
        "import sys, producer.client, producer.cli.main; "
        "heavy = [m for m in ('psycopg', 'psycopg_pool', 'httpx', 'worker.lookups.tasks', "
        "'worker.database.pool', 'worker.celery_app') "
        "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
