"""The HTTP gateway in-process: the ASGI test client over the real producer client, with
tasks run eagerly against the dict risk table and fakeredis (or a client call replaced)."""

from __future__ import annotations

import asyncio
import csv
import errno
import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import fakeredis
import fakeredis.aioredis
import httpx
import pytest
from click.testing import CliRunner
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from producer.batch.results import JobStatus
from producer.cli import main as cli
from producer.client import Client
from producer.gateway import app as gateway
from producer.gateway.cache import AsyncCacheReader
from producer.gateway.jobs import BatchLauncher
from tests.support.portfolios import check_output, portfolio
from worker.contract.batch_store import BatchStore
from worker.contract.errors import ErrorCode, ZipscoreError
from worker.contract.index_cache import IndexCache, utcnow
from worker.contract.result_cache import ResultCache
from worker.contract.settings import Settings

Sent = list[tuple[str, tuple[Any, ...]]]


def settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "gateway_upload_dir": tmp_path / "uploads",
        "batch_chunk_size": 4,
        "batch_poll_seconds": 0.01,
        "batch_chunk_deadline_seconds": 0.5,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def fake_server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def redis_client(fake_server: fakeredis.FakeServer) -> Iterator[fakeredis.FakeRedis]:
    """The unit tier's fakeredis, on a server the async cache reader can share."""
    client = fakeredis.FakeRedis(server=fake_server)
    yield client
    client.flushall()


@pytest.fixture
def client(
    tmp_path: Path, cache: ResultCache, index_cache: IndexCache, batch_store: BatchStore
) -> Client:
    return Client(
        settings(tmp_path),
        cache=cache,
        index_cache=index_cache,
        batch_store=batch_store,
        timeout=1.0,
    )


@pytest.fixture
def api(client: Client, index_eager: Sent) -> Iterator[TestClient]:
    """The gateway over the eager client (tasks in-process, fakeredis, memory stores)."""
    with TestClient(gateway.create_app(client.settings, client=client)) as test_client:
        yield test_client


def error(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    return response.status_code, body["error"]["code"]


# -- lookups and listings ---------------------------------------------------------------


def test_lookup_answers_the_contract(api: TestClient) -> None:
    assert api.get("/zipcodes/9000").json() == {"zipcode": 9000, "risk_factor": "B", "exists": True}
    assert api.get("/zipcodes/1501").json() == {
        "zipcode": 1501,
        "risk_factor": None,
        "exists": False,
    }


@pytest.mark.parametrize("zipcode", ["999", "abc", "10000", "9000'%20OR%201=1"])
def test_a_bad_zipcode_is_400_zipcode_not_valid(api: TestClient, zipcode: str) -> None:
    assert error(api.get(f"/zipcodes/{zipcode}")) == (400, "ZIPCODE_NOT_VALID")


def test_listing_by_risk_factor(api: TestClient) -> None:
    body = api.get("/zipcodes", params={"risk_factor": "A"}).json()
    assert body["risk_factor"] == "A"
    assert body["zipcodes"] == list(range(9170, 9241))
    assert body["count"] == 71


def test_a_bad_or_missing_risk_factor_is_400(api: TestClient) -> None:
    assert error(api.get("/zipcodes", params={"risk_factor": "Z"})) == (
        400,
        "RISK_FACTOR_NOT_VALID",
    )
    missing = api.get("/zipcodes")
    assert error(missing) == (400, "RISK_FACTOR_NOT_VALID")  # the framework's 422, overridden
    assert missing.json()["error"]["message"].startswith("risk_factor:")


# Every route with its path filled in, and the code a bad value of each parameter gets.
SAMPLE_PATH_VALUES = {"zipcode": "9000", "job_id": "0123456789abcdef"}
CODES = {
    "risk_factor": "RISK_FACTOR_NOT_VALID",
    "base_year": "WRONG_YEAR",
    "year": "WRONG_YEAR",
    "zipcode_column": "BAD_INPUT_FILE",
    "extra": "BAD_INPUT_FILE",
}


def routes_and_parameters(app: FastAPI) -> list[tuple[str, str, str]]:
    """(method, path, query parameter) for every operation and each of its query parameters,
    plus one it does not declare."""
    cases = []
    for route in app.routes:
        if not isinstance(route, APIRoute):
            continue
        path = route.path_format.format(**SAMPLE_PATH_VALUES)
        names = [param.name for param in route.dependant.query_params] + ["extra"]
        methods = sorted(route.methods or ())
        cases += [(method, path, name) for method in methods for name in names]
    return cases


def test_a_repeated_query_parameter_is_refused_on_every_route(
    api: TestClient, batch_store: BatchStore, tmp_path: Path
) -> None:
    """`?risk_factor=A&risk_factor=B` took the last value silently: every parameter of every
    route, given twice, is now 400 with the parameter's code (and no route runs)."""
    cases = routes_and_parameters(api.app)  # type: ignore[arg-type]
    assert {name for _, _, name in cases} == set(CODES)  # a new parameter needs its code here
    for method, path, name in cases:
        values = {"risk_factor": ["A", "B"], "base_year": ["2004", "2013"]}.get(name, ["1", "2"])
        response = api.request(method, path, params=[(name, v) for v in values], content=b"x")
        assert error(response) == (400, CODES[name]), (method, path, name, response.text)
        assert f"{name!r} is given more than once" in response.json()["error"]["message"]
    assert job_keys(batch_store) == []
    assert not (tmp_path / "uploads").exists() or list((tmp_path / "uploads").iterdir()) == []
    # Both names of the base year, once each, are not a repetition.
    assert api.get("/index", params={"base_year": "2013", "year": "2013"}).status_code == 503


# -- the health index -------------------------------------------------------------------


def seed_index(index_cache: IndexCache) -> None:
    fetched_at = utcnow().isoformat()
    index_cache.put(
        {"base_year": 2004, "index": 135.61, "period": "2021-09", "fetched_at": fetched_at}
    )


def test_index_by_base_year_and_by_its_older_name(api: TestClient, index_cache: IndexCache) -> None:
    seed_index(index_cache)
    for params in ({"base_year": "2004"}, {"year": "2004"}, {}):
        body = api.get("/index", params=params).json()
        assert (body["base_year"], body["index"], body["stale"]) == (2004, 135.61, False)


@pytest.mark.parametrize(
    "params", [{"base_year": "1999"}, {"year": "x"}, {"base_year": "2004", "year": "2013"}]
)
def test_a_wrong_year_is_400(api: TestClient, params: dict[str, str]) -> None:
    assert error(api.get("/index", params=params)) == (400, "WRONG_YEAR")


def test_no_index_yet_is_503_index_unavailable(api: TestClient) -> None:
    assert error(api.get("/index", params={"base_year": "2013"})) == (503, "INDEX_UNAVAILABLE")


# -- cache hits on the loop (redis.asyncio) ---------------------------------------------


@pytest.fixture
def fast_api(
    client: Client, index_eager: Sent, fake_server: fakeredis.FakeServer
) -> Iterator[TestClient]:
    """The gateway with its async cache reader on the same fakeredis server."""
    reader = AsyncCacheReader(fakeredis.aioredis.FakeRedis(server=fake_server), "unit")
    app = gateway.create_app(client.settings, client=client, cache_reader=reader)
    with TestClient(app) as test_client:
        yield test_client


def test_hits_are_read_on_the_loop_without_the_client(
    fast_api: TestClient,
    client: Client,
    index_cache: IndexCache,
    index_eager: Sent,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = fast_api.get("/zipcodes/9000").json()  # a miss: through the client, then cached
    listing = fast_api.get("/zipcodes", params={"risk_factor": "B"}).json()
    seed_index(index_cache)
    sent = len(index_eager)

    def no_client(*_: object) -> None:
        raise AssertionError("a hit must not reach the client")

    for name in ("lookup", "by_risk_factor", "index"):
        monkeypatch.setattr(client, name, no_client)
    assert fast_api.get("/zipcodes/9000").json() == first
    assert fast_api.get("/zipcodes", params={"risk_factor": "B"}).json() == listing
    index = fast_api.get("/index", params={"year": "2004"}).json()
    assert (index["index"], index["stale"]) == (135.61, False)
    assert len(index_eager) == sent


def test_a_stale_cached_index_is_marked_stale(
    fast_api: TestClient, index_cache: IndexCache
) -> None:
    index_cache.put(
        {
            "base_year": 2004,
            "index": 1.0,
            "period": "2020-01",
            "fetched_at": "2020-02-01T00:00:00+00:00",
        }
    )
    assert fast_api.get("/index").json()["stale"] is True


def test_a_broken_async_cache_falls_back_to_the_client(
    fast_api: TestClient,
    fake_server: fakeredis.FakeServer,
    client: Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Both readers fail (the client's own read is swallowed too); restored before teardown.
    monkeypatch.setattr(fake_server, "connected", False)
    monkeypatch.setattr(
        client, "lookup", lambda z, **_: {"zipcode": 9000, "risk_factor": "B", "exists": True}
    )
    assert fast_api.get("/zipcodes/9000").json()["risk_factor"] == "B"


# -- error mapping ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (ErrorCode.ZIPCODE_NOT_VALID, 400),
        (ErrorCode.RISK_FACTOR_NOT_VALID, 400),
        (ErrorCode.WRONG_YEAR, 400),
        (ErrorCode.BAD_INPUT_FILE, 400),
        (ErrorCode.USAGE, 400),
        (ErrorCode.UNAUTHORIZED, 401),
        (ErrorCode.NOT_FOUND, 404),
        (ErrorCode.METHOD_NOT_ALLOWED, 405),
        (ErrorCode.CONFLICT, 409),
        (ErrorCode.RATE_LIMITED, 429),
        (ErrorCode.INDEX_UNAVAILABLE, 503),
        (ErrorCode.BACKEND_UNAVAILABLE, 503),
        (ErrorCode.TIMEOUT, 504),
    ],
)
def test_every_code_has_its_status(
    api: TestClient, client: Client, monkeypatch: pytest.MonkeyPatch, code: ErrorCode, status: int
) -> None:
    def refuse(_: object, **__: object) -> None:
        raise ZipscoreError(code, "the message")

    monkeypatch.setattr(client, "lookup", refuse)
    response = api.get("/zipcodes/9000")
    assert error(response) == (status, code.value)
    assert response.json()["error"]["message"] == "the message"


def test_no_traceback_reaches_a_client(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(_: object, **__: object) -> None:
        raise RuntimeError("secret dsn postgresql://u:pw@db")

    monkeypatch.setattr(client, "lookup", crash)
    app = gateway.create_app(client.settings, client=client)
    with TestClient(app, raise_server_exceptions=False) as api:
        response = api.get("/zipcodes/9000")
    assert error(response) == (500, "BACKEND_UNAVAILABLE")
    assert "pw" not in response.text
    assert "Traceback" not in response.text


def test_unknown_routes_and_methods_answer_in_the_contract_shape(api: TestClient) -> None:
    assert error(api.get("/nowhere")) == (404, "NOT_FOUND")
    wrong_method = api.delete("/zipcodes/9000")
    assert error(wrong_method) == (405, "METHOD_NOT_ALLOWED")
    assert wrong_method.headers["allow"] == "GET, HEAD"
    assert error(api.get("/batches")) == (405, "METHOD_NOT_ALLOWED")


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


# -- the event loop stays free ----------------------------------------------------------


def slow_lookup_app(client: Client, offload: gateway.Offload | None) -> FastAPI:
    def slow(zipcode: object, **_: object) -> dict[str, Any]:
        time.sleep(1.0)  # a cold cache and a busy worker
        return {"zipcode": 9000, "risk_factor": "B", "exists": True}

    client.lookup = slow  # type: ignore[assignment,method-assign]
    client.timeout = 5.0  # the gateway's deadline: well past the slow lookup
    return gateway.create_app(client.settings, client=client, offload=offload)


async def healthz_while_a_lookup_waits(app: FastAPI) -> float:
    """Seconds from sending a 1 s lookup to /healthz's answer, sent 0.05 s after it."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        began = time.perf_counter()
        lookup = asyncio.create_task(http.get("/zipcodes/9000"))
        await asyncio.sleep(0.05)  # the lookup is under way
        health = await http.get("/healthz")
        waited = time.perf_counter() - began
        assert health.status_code == 200
        assert (await lookup).status_code == 200
    return waited


def test_a_slow_lookup_does_not_stall_healthz(client: Client) -> None:
    waited = asyncio.run(healthz_while_a_lookup_waits(slow_lookup_app(client, None)))
    assert waited < 0.6  # far below the 1 s lookup, with room for a loaded CI machine


def test_the_blocking_variant_would_stall_it(client: Client) -> None:
    """The control: the same call made on the loop (the ancestor's design) stalls /healthz."""

    async def inline(call: Callable[[], Any]) -> Any:
        return call()

    waited = asyncio.run(healthz_while_a_lookup_waits(slow_lookup_app(client, inline)))
    assert waited > 0.95


# -- questions waiting for a worker: bounded in number and in time ----------------------


def dead_worker_app(client: Client, threads: int, waiting: int) -> FastAPI:
    """A gateway whose lookups wait out their whole timeout (no worker), as client.call does."""
    sent: list[float] = []

    def no_answer(zipcode: object, *, timeout: float | None = None) -> None:
        wait = client.timeout if timeout is None else timeout
        sent.append(wait)
        time.sleep(wait)
        raise ZipscoreError(ErrorCode.TIMEOUT, f"no answer from a worker within {wait:g} s")

    client.lookup = no_answer  # type: ignore[assignment,method-assign]
    client.timeout = 0.5
    limits = {"gateway_threads": threads, "gateway_max_waiting": waiting}
    app = gateway.create_app(client.settings.model_copy(update=limits), client=client)
    app.state.sent = sent
    return app


async def burst(app: FastAPI, count: int) -> list[tuple[httpx.Response, float]]:
    """`count` concurrent uncached lookups; each answer with its seconds from the start."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        began = time.perf_counter()

        async def one(zipcode: int) -> tuple[httpx.Response, float]:
            response = await http.get(f"/zipcodes/{zipcode}")
            return response, time.perf_counter() - began

        return await asyncio.gather(*(one(1000 + i) for i in range(count)))


def test_no_question_outlives_its_deadline_however_many_wait_for_a_thread(
    client: Client,
) -> None:
    """Twelve lookups, two threads, no worker: all 504 at the 0.5 s deadline, not in turns
    (the thread pool's queue counts against it), and those that never got a thread sent
    nothing."""
    app = dead_worker_app(client, threads=2, waiting=10)
    answers = asyncio.run(burst(app, 12))
    assert [error(response) for response, _ in answers] == [(504, "TIMEOUT")] * 12
    assert max(seconds for _, seconds in answers) < 0.5 + 0.4  # not 12 / 2 x 0.5 = 3 s
    assert len(app.state.sent) == 2  # the two with a thread; each given what was left
    assert all(0 < wait <= 0.5 for wait in app.state.sent)


def test_a_saturated_gateway_answers_503_at_once_with_retry_after(client: Client) -> None:
    app = dead_worker_app(client, threads=2, waiting=3)
    answers = asyncio.run(burst(app, 10))
    refused = [(response, seconds) for response, seconds in answers if response.status_code == 503]
    assert len(refused) == 5  # 2 running and 3 waiting: the other 5 are not queued
    assert all(error(response) == (503, "BACKEND_UNAVAILABLE") for response, _ in refused)
    assert all(response.headers["retry-after"] == "1" for response, _ in refused)
    assert max(seconds for _, seconds in refused) < 0.25  # not after the others' deadline
    assert sorted(response.status_code for response, _ in answers) == [503] * 5 + [504] * 5


def test_batch_calls_are_not_held_up_by_questions_waiting_for_a_dead_worker(
    client: Client,
) -> None:
    """Every question thread waits out its deadline: a batch's status still answers at once
    (it queued behind them, on the same pool, for up to the whole lookup timeout)."""
    app = dead_worker_app(client, threads=2, waiting=0)

    async def status_during_the_wait() -> tuple[int, float]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            lookups = [asyncio.create_task(http.get(f"/zipcodes/{z}")) for z in (1000, 1001)]
            await asyncio.sleep(0.05)  # both threads are taken
            began = time.perf_counter()
            status = await http.get("/batches/0123456789abcdef")
            waited = time.perf_counter() - began
            await asyncio.gather(*lookups)
        return status.status_code, waited

    status, waited = asyncio.run(status_during_the_wait())
    assert status == 404  # no such job: the answer came from Redis, on a thread
    assert waited < 0.3  # not after the lookups' 0.5 s


# -- batches ----------------------------------------------------------------------------


def wait_done(api: TestClient, job: str, seconds: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        body: dict[str, Any] = api.get(f"/batches/{job}").json()
        if body["state"] == "done":
            return body
        time.sleep(0.02)
    raise AssertionError(f"job {job} not done: {body}")


def test_a_batch_is_accepted_runs_in_the_background_and_its_result_streams(
    api: TestClient, tmp_path: Path
) -> None:
    source = portfolio(tmp_path / "in.csv", 30)
    accepted = api.post(
        "/batches", content=source.read_bytes(), headers={"Content-Type": "text/csv"}
    )
    assert accepted.status_code == 202
    job = accepted.json()["job_id"]
    assert accepted.headers["location"] == f"/batches/{job}"

    progress = wait_done(api, job)
    assert (progress["rows"], progress["ok"], progress["unknown"]) == (30, 16, 4)
    assert progress["chunks_done"] == progress["chunks_total"] > 1
    assert "input" not in progress
    assert "output" not in progress

    result = api.get(f"/batches/{job}/result")
    assert result.status_code == 200
    assert result.headers["content-type"].startswith("text/csv")
    scored = tmp_path / "scored.csv"
    scored.write_bytes(result.content)
    check_output(scored, 30)


def test_the_zipcode_column_is_chosen_by_query(api: TestClient) -> None:
    body = b"id;x\r\n1,9000\r\n2,1501\r\n".replace(b";", b",")
    accepted = api.post("/batches", params={"zipcode_column": "x"}, content=body)
    job = accepted.json()["job_id"]
    wait_done(api, job)
    rows = list(csv.reader(io.StringIO(api.get(f"/batches/{job}/result").text)))
    assert rows == [
        ["id", "x", "risk_factor", "status", "error"],
        ["1", "9000", "B", "ok", ""],
        ["2", "1501", "", "unknown", ""],
    ]


def job_keys(batch_store: BatchStore) -> list[bytes]:
    return list(batch_store.redis.scan_iter("unit:batch:job:*"))


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"policy,postcode\nP1,9000\n",
        b'zipcode,note\n9000,"open\n',
        b"zipcode\n\xff\xfe9000\n",
        b"zip\x00code\n9000\n",
    ],
)
def test_a_malformed_upload_is_400_before_any_job_exists(
    api: TestClient, batch_store: BatchStore, tmp_path: Path, body: bytes
) -> None:
    response = api.post("/batches", content=body)
    assert error(response) == (400, "BAD_INPUT_FILE")
    assert job_keys(batch_store) == []
    assert list((tmp_path / "uploads").iterdir()) == []
    assert str(tmp_path) not in response.text


def test_an_upload_over_the_limit_is_413(
    client: Client, index_eager: Sent, tmp_path: Path, batch_store: BatchStore
) -> None:
    small = client.settings.model_copy(update={"gateway_max_upload_mb": 1})
    app = gateway.create_app(small, client=client)
    big = b"zipcode\n" + b"9000\n" * 300_000
    with TestClient(app) as api:
        declared = api.post("/batches", content=big)

        def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it streams
            for start in range(0, len(big), 65_536):
                yield big[start : start + 65_536]

        streamed = api.post("/batches", content=chunked())
    assert error(declared) == (413, "BAD_INPUT_FILE")
    assert error(streamed) == (413, "BAD_INPUT_FILE")
    assert job_keys(batch_store) == []
    assert list((tmp_path / "uploads").iterdir()) == []


def test_an_upload_onto_a_full_disk_is_507_and_leaves_nothing(
    api: TestClient,
    batch_store: BatchStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The disk fills after 64 KiB: a contract answer, the partial file removed, the slot
    given back, and one log line without a traceback (it was 500 and an ENOSPC traceback)."""
    write = anyio.AsyncFile.write
    written = {"bytes": 0}

    async def fill_up(self: anyio.AsyncFile[bytes], data: bytes) -> int:
        written["bytes"] += len(data)
        if written["bytes"] > 65_536:
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "uploads"))
        return await write(self, data)

    monkeypatch.setattr(anyio.AsyncFile, "write", fill_up)
    big = b"zipcode\n" + b"9000\n" * 100_000

    def chunked() -> Iterator[bytes]:
        for start in range(0, len(big), 16_384):
            yield big[start : start + 16_384]

    response = api.post("/batches", content=chunked())
    assert error(response) == (507, "BACKEND_UNAVAILABLE")
    assert "ENOSPC" in response.json()["error"]["message"]
    assert str(tmp_path) not in response.text
    assert list((tmp_path / "uploads").iterdir()) == []
    assert job_keys(batch_store) == []
    warnings = [r for r in caplog.records if r.name == "producer.gateway.app" and r.levelno >= 30]
    assert [(r.levelname, r.exc_info) for r in warnings] == [("WARNING", None)]
    monkeypatch.setattr(anyio.AsyncFile, "write", write)  # space freed: the slot is free too
    for _ in range(3):  # more than the two slots: none was kept by the refused upload
        accepted = api.post("/batches", content=b"zipcode\n9000\n")
        assert accepted.status_code == 202, accepted.text
        wait_done(api, accepted.json()["job_id"])


def test_unknown_jobs_are_404(api: TestClient) -> None:
    for path in ("/batches/0123456789abcdef", "/batches/not-a-job", "/batches/abcdef12/result"):
        assert error(api.get(path)) == (404, "NOT_FOUND")
    assert error(api.post("/batches/0123456789abcdef/resume")) == (404, "NOT_FOUND")


def job_status(tmp_path: Path, state: str) -> JobStatus:
    return JobStatus(
        job_id="0123456789abcdef",
        state=state,
        input=str(tmp_path / "uploads" / "a.csv"),
        output=str((tmp_path / "uploads" / "a.scored.csv").resolve()),
        table_version=1,
        rows=8,
        ok=8,
        unknown=0,
        invalid=0,
        chunks_done=2,
        chunks_total=5,
        lines_total=20,
        resubmitted=0,
        seconds=0.5,
    )


def test_the_result_is_409_until_the_job_is_done(
    api: TestClient, client: Client, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(client, "batch_status", lambda job: job_status(tmp_path, "running"))
    response = api.get("/batches/0123456789abcdef/result")
    assert error(response) == (409, "CONFLICT")
    assert "running (2/5 chunks)" in response.json()["error"]["message"]


def test_a_result_outside_the_upload_directory_is_never_served(
    api: TestClient, client: Client, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    elsewhere = job_status(tmp_path, "done").model_copy(update={"output": "/etc/passwd"})
    monkeypatch.setattr(client, "batch_status", lambda job: elsewhere)
    assert error(api.get("/batches/0123456789abcdef/result")) == (404, "NOT_FOUND")


def test_resume_runs_an_interrupted_job_and_refuses_a_running_one(
    api: TestClient, client: Client, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "uploads").mkdir()
    (tmp_path / "uploads" / "a.csv").write_text("zipcode\n")  # the upload; no output yet
    resumed: list[str] = []

    def resume_batch(job: str, *, progress: Any) -> Any:
        resumed.append(job)
        with progress(job, 20):
            pass
        return None

    monkeypatch.setattr(client, "resume_batch", resume_batch)
    state = {"now": "interrupted"}
    monkeypatch.setattr(client, "batch_status", lambda job: job_status(tmp_path, state["now"]))
    response = api.post("/batches/0123456789abcdef/resume")
    assert response.status_code == 202
    assert response.headers["location"] == "/batches/0123456789abcdef"
    assert resumed == ["0123456789abcdef"]

    state["now"] = "running"
    assert error(api.post("/batches/0123456789abcdef/resume")) == (409, "CONFLICT")
    state["now"] = "done"
    assert api.post("/batches/0123456789abcdef/resume").status_code == 202
    assert resumed == ["0123456789abcdef"]


def test_a_job_stopped_before_its_output_was_published_is_resumed_over_http(
    api: TestClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Regression: resume required the finished output file, which an unfinished job never
    has (it writes a partial file beside it), so every real resume answered 404."""
    from producer.batch.output import publish as real_publish

    fail_once = [True]

    def publish_fails_once(sink: Any, record: dict[str, str]) -> None:
        if fail_once.pop() if fail_once else False:
            raise ZipscoreError(ErrorCode.BACKEND_UNAVAILABLE, "disk full (drill)")
        real_publish(sink, record)

    monkeypatch.setattr("producer.batch.job_loop.publish", publish_fails_once)
    # Given a job whose rows were all scored, then stopped before its output was in place
    job = api.post("/batches", content=b"zipcode\n9000\n1501\n").json()["job_id"]
    deadline = time.monotonic() + 20
    while api.get(f"/batches/{job}").json()["state"] == "running":
        assert time.monotonic() < deadline, "the job did not stop"
        time.sleep(0.02)
    assert not list((tmp_path / "uploads").glob("*.scored.csv"))
    # When it is resumed over HTTP, then it is accepted and finishes with its output
    assert api.post(f"/batches/{job}/resume").status_code == 202
    assert wait_done(api, job)["rows"] == 2
    assert api.get(f"/batches/{job}/result").text.splitlines()[1].startswith("9000,")


@pytest.mark.timeout(20)
def test_a_resume_that_finds_the_job_already_published_answers(
    api: TestClient, client: Client, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Regression: a resume whose runner reported no progress (the job had been published
    meanwhile) left the request waiting for ever."""
    from types import SimpleNamespace

    (tmp_path / "uploads").mkdir()
    (tmp_path / "uploads" / "a.csv").write_text("zipcode\n")
    monkeypatch.setattr(
        client, "resume_batch", lambda job, *, progress: SimpleNamespace(job_id=job, rows=8)
    )
    monkeypatch.setattr(client, "batch_status", lambda job: job_status(tmp_path, "interrupted"))
    assert api.post("/batches/0123456789abcdef/resume").status_code == 202


def test_resume_never_shows_the_server_paths(
    api: TestClient, batch_store: BatchStore, tmp_path: Path
) -> None:
    """An interrupted job whose upload changed is refused on resume; the message named the
    upload by its full path on the server."""
    accepted = api.post("/batches", content=b"zipcode\n9000\n1501\n")
    job = accepted.json()["job_id"]
    wait_done(api, job)
    assert batch_store.update_job(job, {"state": "interrupted"})
    (source,) = [p for p in (tmp_path / "uploads").iterdir() if not p.name.endswith(".scored.csv")]
    with source.open("ab") as upload:
        upload.write(b"9001\n")
    response = api.post(f"/batches/{job}/resume")
    assert error(response) == (400, "BAD_INPUT_FILE")
    assert response.json()["error"]["message"].startswith("upload changed since job started")
    assert str(tmp_path) not in response.text
    assert source.name not in response.text


def test_a_gateway_runs_a_bounded_number_of_batches(
    client: Client, index_eager: Sent, tmp_path: Path
) -> None:
    import threading

    release = threading.Event()

    def hold(source: Path, output: Path, **kwargs: Any) -> Any:
        kwargs["progress"]("0123456789abcdef", 1)
        release.wait(10)

    client.score_file = hold  # type: ignore[method-assign]
    launcher = BatchLauncher(client, max_running=1)
    app = gateway.create_app(client.settings, client=client, launcher=launcher)
    with TestClient(app) as api:
        first = api.post("/batches", content=b"zipcode\n9000\n")
        second = api.post("/batches", content=b"zipcode\n9000\n")
        uploads = sorted(p.name for p in client.settings.gateway_upload_dir.iterdir())
        release.set()
    assert first.status_code == 202
    assert error(second) == (503, "BACKEND_UNAVAILABLE")
    assert len([name for name in uploads if not name.endswith(".scored.csv")]) == 1, uploads


def test_a_job_that_stops_after_it_started_is_logged_as_resumable(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    def fail_midway(source: Path, output: Path, **kwargs: Any) -> Any:
        kwargs["progress"]("0123456789abcdef", 1)
        raise ZipscoreError(ErrorCode.TIMEOUT, "no worker")

    client.score_file = fail_midway  # type: ignore[method-assign]
    launcher = BatchLauncher(client, max_running=1)
    started = launcher.start(Path("in.csv"), Path("out.csv"), zipcode_column="zipcode")
    assert started.result(timeout=5) == "0123456789abcdef"
    deadline = time.monotonic() + 5
    while "resumable" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "batch job 0123456789abcdef stopped: TIMEOUT: no worker" in caplog.text


# -- the command ------------------------------------------------------------------------


def test_zipscore_serve_runs_uvicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: dict[str, Any] = {}
    monkeypatch.setattr("uvicorn.run", lambda target, **kwargs: ran.update(kwargs, app=target))
    monkeypatch.setattr("worker.contract.log_setup.configure", lambda *a, **k: None)
    result = CliRunner().invoke(cli.cli, ["serve", "--port", "5099"])
    assert result.exit_code == 0, result.output
    assert ran["app"] == "producer.gateway.app:create_app"
    assert (ran["host"], ran["port"], ran["factory"]) == ("127.0.0.1", 5099, True)
