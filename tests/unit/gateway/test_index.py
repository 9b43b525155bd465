"""/index in-process: by base year and by its older name, refused years, no index yet."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from producer.gateway.cache import AsyncCacheReader
from tests.support.gateway import Sent, error, seed_index
from worker.contract.index_cache import IndexCache

# -- the health index -------------------------------------------------------------------


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


def test_a_miss_reads_the_index_cache_once(
    fast_api: TestClient,
    index_cache: IndexCache,
    cache_reader: AsyncCacheReader,
    index_eager: Sent,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The gateway read the index cache on the loop, then `Client.index` read it again."""
    reads = {"client": 0, "loop": 0}
    read, read_on_loop = index_cache.get, cache_reader.index

    def counted(base_year: int) -> dict[str, Any] | None:
        reads["client"] += 1
        return read(base_year)

    async def counted_on_loop(base_year: int) -> dict[str, Any] | None:
        reads["loop"] += 1
        return await read_on_loop(base_year)

    monkeypatch.setattr(index_cache, "get", counted)
    monkeypatch.setattr(cache_reader, "index", counted_on_loop)
    # When the index is asked before any refresh (a miss: a worker is asked, and has none)
    assert error(fast_api.get("/index", params={"base_year": "2013"})) == (503, "INDEX_UNAVAILABLE")
    # Then the cache was read once, on the loop, and the question reached a worker
    assert reads == {"client": 0, "loop": 1}
    assert [name for name, _ in index_eager][-1:] == ["index.latest"]
