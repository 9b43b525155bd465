"""/zipcodes/{zipcode} and /zipcodes in-process: the ASGI test client over the eager
client (tasks in-process, the dict risk table, fakeredis)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from producer.gateway.cache import AsyncCacheReader
from tests.support.gateway import Sent, error
from worker.contract.result_cache import ResultCache

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


# -- one cache read a question ----------------------------------------------------------


def count_cache_reads(
    monkeypatch: pytest.MonkeyPatch, cache: ResultCache, reader: AsyncCacheReader
) -> dict[str, int]:
    """Counts the reads of the result cache: the client's (on a thread) and the gateway's
    own (on the loop)."""
    reads = {"client": 0, "loop": 0}
    read, read_on_loop = cache.get, reader.lookup

    def counted(kind: str, name: object) -> dict[str, Any] | None:
        reads["client"] += 1
        return read(kind, name)

    async def counted_on_loop(kind: str, name: object) -> dict[str, Any] | None:
        reads["loop"] += 1
        return await read_on_loop(kind, name)

    monkeypatch.setattr(cache, "get", counted)
    monkeypatch.setattr(reader, "lookup", counted_on_loop)
    return reads


@pytest.mark.parametrize("url", ["/zipcodes/9000", "/zipcodes?risk_factor=B"])
def test_a_miss_reads_the_cache_once_then_asks_a_worker(
    fast_api: TestClient,
    cache: ResultCache,
    cache_reader: AsyncCacheReader,
    index_eager: Sent,
    monkeypatch: pytest.MonkeyPatch,
    url: str,
) -> None:
    """The gateway read the cache on the loop, then the client read it again on its thread
    before sending the task: two reads of a cache known to miss."""
    # Given an empty cache, and every read of it counted
    reads = count_cache_reads(monkeypatch, cache, cache_reader)
    sent = len(index_eager)
    # When a question misses
    answered = fast_api.get(url)
    # Then the cache was read once, on the loop, and a worker answered
    assert answered.status_code == 200, answered.text
    assert reads == {"client": 0, "loop": 1}
    assert len(index_eager) == sent + 1
    # And the answer it cached is a hit next time, still one read
    assert fast_api.get(url).json() == answered.json()
    assert reads == {"client": 0, "loop": 2}
    assert len(index_eager) == sent + 1


def test_without_an_async_reader_the_client_reads_the_cache_once(
    api: TestClient, cache: ResultCache, index_eager: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: a gateway given a client and no reader leaves the one read to it."""
    reads = {"client": 0}
    read = cache.get

    def counted(kind: str, name: object) -> dict[str, Any] | None:
        reads["client"] += 1
        return read(kind, name)

    monkeypatch.setattr(cache, "get", counted)
    assert api.get("/zipcodes/9000").status_code == 200
    assert reads == {"client": 1}
