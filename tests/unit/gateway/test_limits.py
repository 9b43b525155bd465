"""Questions waiting for a worker are bounded in number and in time; batch calls have
threads of their own; each API key has its batches a minute."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from producer.client import Client
from producer.gateway import app as gateway
from producer.gateway.limits import BatchRateLimit, Refusal
from tests.support.gateway import OTHER_KEY, auth, error, finish
from worker.contract.errors import ErrorCode, ZipscoreError

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


# -- the per-key batch limit ------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_each_key_has_a_bucket_of_batches_refilled_over_the_minute() -> None:
    clock = Clock()
    limit = BatchRateLimit(per_minute=3, clock=clock)
    for _ in range(3):  # a burst of a minute's worth
        limit.take("a")
    with pytest.raises(Refusal) as refused:
        limit.take("a")
    assert refused.value.code is ErrorCode.RATE_LIMITED
    assert refused.value.headers == {"Retry-After": "20"}  # one batch every 20 s
    limit.take("b")  # another key has its own bucket
    clock.now += 19.0
    with pytest.raises(Refusal) as still:
        limit.take("a")
    assert still.value.headers == {"Retry-After": "1"}
    clock.now += 1.0
    limit.take("a")
    clock.now += 3600  # idle: the bucket fills up to a minute's worth, no more
    for _ in range(3):
        limit.take("a")
    with pytest.raises(Refusal):
        limit.take("a")


def test_a_key_past_its_batches_a_minute_is_429_and_other_keys_are_not(
    keyed: TestClient, keyed_client: Client
) -> None:
    first = keyed.post("/batches", content=b"zipcode\n9000\n", headers=auth())
    second = keyed.post("/batches", content=b"zipcode\n9000\n", headers=auth())
    other = keyed.post("/batches", content=b"zipcode\n9000\n", headers=auth(OTHER_KEY))
    assert first.status_code == 202, first.text
    assert error(second) == (429, "RATE_LIMITED")
    assert 1 <= int(second.headers["retry-after"]) <= 60
    assert other.status_code == 202, other.text
    for accepted in (first, other):
        finish(keyed, accepted.json()["job_id"])
    uploads = list(keyed_client.settings.gateway_upload_dir.iterdir())
    assert len([p for p in uploads if not p.name.endswith(".scored.csv")]) == 2  # not the 429
