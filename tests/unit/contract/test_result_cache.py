"""The versioned result cache (fakeredis): hits, invalidation by reload, monotonic versions."""

from __future__ import annotations

import fakeredis

from tests.support.settings import MakeSettings
from worker.contract.result_cache import ResultCache


def test_nothing_is_read_before_a_version_is_published(cache: ResultCache) -> None:
    assert cache.table_version() is None
    assert cache.get("lookup", 9000) is None


def test_an_answer_put_is_read_back_for_its_version(cache: ResultCache) -> None:
    answer = {"zipcode": 9000, "risk_factor": "B", "exists": True}
    cache.put(3, "lookup", 9000, answer)
    assert cache.table_version() == 3
    assert cache.get("lookup", 9000) == answer
    assert cache.get("lookup", 9001) is None


def test_a_new_version_hides_every_older_answer(cache: ResultCache) -> None:
    cache.put(1, "lookup", 9000, {"risk_factor": "B"})
    cache.put(1, "risk-factor", "A", {"count": 1})
    cache.publish_version(2)
    assert cache.get("lookup", 9000) is None
    assert cache.get("risk-factor", "A") is None


def test_versions_never_go_back(cache: ResultCache) -> None:
    cache.publish_version(5)
    cache.put(4, "lookup", 9000, {"risk_factor": "stale"})
    assert cache.table_version() == 5
    assert cache.get("lookup", 9000) is None


def test_answers_expire_and_keys_carry_the_prefix(redis_client: fakeredis.FakeRedis) -> None:
    cache = ResultCache(redis_client, "pfx", ttl_seconds=30)
    cache.put(1, "lookup", 1000, {"x": 1})
    key = cache.key(1, "lookup", 1000)
    assert key == "pfx:cache:v1:lookup:1000"
    assert 0 < redis_client.ttl(key) <= 30
    assert cache.version_key.startswith("pfx:")


def test_a_flushed_redis_means_no_cache_not_a_wrong_answer(
    cache: ResultCache, redis_client: fakeredis.FakeRedis
) -> None:
    cache.put(1, "lookup", 9000, {"risk_factor": "B"})
    redis_client.delete(cache.version_key)
    assert cache.get("lookup", 9000) is None


def test_the_cache_is_built_from_settings(make_settings: MakeSettings) -> None:
    from pydantic import RedisDsn

    from worker.contract.result_cache import cache_from_settings, redis_client

    settings = make_settings(
        cache_url=RedisDsn("redis://cachehost:6380/3"),
        redis_prefix="blue",
        cache_ttl_seconds=42,
    )
    cache = cache_from_settings(settings)
    assert cache.version_key == "blue:cache:risk-table-version"
    assert cache.key(7, "lookup", 1000) == "blue:cache:v7:lookup:1000"
    client = redis_client("redis://cachehost:6380/3")
    options = client.connection_pool.connection_kwargs
    assert (options["host"], options["port"], options["db"]) == ("cachehost", 6380, 3)
    assert options["socket_connect_timeout"] == 2
    assert options["socket_timeout"] == 5


def test_the_ttl_comes_from_the_constructor(redis_client: fakeredis.FakeRedis) -> None:
    ResultCache(redis_client, "t", ttl_seconds=42).put(1, "lookup", 1000, {})
    assert 40 <= redis_client.ttl("t:cache:v1:lookup:1000") <= 42
