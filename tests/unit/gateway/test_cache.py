"""Cache hits read on the loop with redis.asyncio, without the client; a broken async
cache falls back to the client."""

from __future__ import annotations

import fakeredis
import fakeredis.aioredis
import pytest
from fastapi.testclient import TestClient

from producer.client import Client
from tests.support.gateway import Sent, seed_index
from worker.contract.index_cache import IndexCache

# -- cache hits on the loop (redis.asyncio) ---------------------------------------------


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
        client,
        "lookup_uncached",
        lambda z, **_: {"zipcode": 9000, "risk_factor": "B", "exists": True},
    )
    assert fast_api.get("/zipcodes/9000").json()["risk_factor"] == "B"
