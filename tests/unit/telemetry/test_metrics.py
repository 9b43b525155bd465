"""Metrics in-process: the producer's counts by outcome and source, the deployment's series
read from Redis, the gateway's /metrics behind the keys, the worker listener's keys."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import redis
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY, CollectorRegistry, Counter

from producer import metrics
from producer.client import Client
from producer.gateway import app as gateway
from tests.support.gateway import KEY, auth, gateway_settings
from worker.contract.batch_store import BatchStore
from worker.contract.errors import ZipscoreError
from worker.contract.index_cache import IndexCache
from worker.contract.listen_addresses import is_loopback_host
from worker.contract.metrics import DeploymentCollector, no_retry, queue_keys
from worker.contract.result_cache import ResultCache
from worker.telemetry.listener import serve


def count(question: str, outcome: str, source: str) -> float:
    labels = {"question": question, "outcome": outcome, "source": source}
    return REGISTRY.get_sample_value("zipscore_lookups_total", labels) or 0.0


@pytest.fixture
def recording() -> Iterator[None]:
    metrics.record(True)
    yield
    metrics.record(False)


@pytest.fixture
def client(
    tmp_path: Path, cache: ResultCache, index_cache: IndexCache, batch_store: BatchStore
) -> Client:
    return Client(
        gateway_settings(tmp_path),
        cache=cache,
        index_cache=index_cache,
        batch_store=batch_store,
        timeout=1,
    )


def test_lookups_are_counted_by_outcome_and_source(
    client: Client, eager: list[Any], recording: None
) -> None:
    before = {
        key: count("lookup", *key)
        for key in [("answered", "worker"), ("answered", "cache"), ("unknown", "worker"),
                    ("refused", "none")]
    }  # fmt: skip
    client.lookup(9000)  # asked of a worker, then cached
    client.lookup(9000)
    client.lookup(1312)  # valid, not in the table
    with pytest.raises(ZipscoreError):
        client.lookup(99)
    after = {key: count("lookup", *key) for key in before}
    assert {key: after[key] - before[key] for key in before} == {
        ("answered", "worker"): 1,
        ("answered", "cache"): 1,
        ("unknown", "worker"): 1,
        ("refused", "none"): 1,
    }
    seen = REGISTRY.get_sample_value(
        "zipscore_lookup_duration_seconds_count", {"question": "lookup", "source": "cache"}
    )
    assert seen is not None
    assert seen >= 1


def test_nothing_is_counted_when_metrics_are_off(client: Client, eager: list[Any]) -> None:
    metrics.record(False)
    before = count("lookup", "answered", "worker")
    client.lookup(9000)
    assert count("lookup", "answered", "worker") == before


def test_the_deployment_collector_reads_queues_version_and_index_age() -> None:
    fake = fakeredis.FakeRedis()
    fake.rpush(queue_keys("p", "lookups")[0], "a", "b")
    fake.rpush(queue_keys("p", "lookups")[3], "c")  # a priority level of its own
    fake.set("p:cache:risk-table-version", 7)
    fetched = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    fake.set("p:cache:index:latest:2004", json.dumps({"fetched_at": fetched}))
    registry = CollectorRegistry()
    registry.register(DeploymentCollector(fake, "p", (2004, 2013)))
    value = registry.get_sample_value
    assert value("celery_queue_length", {"queue_name": "lookups"}) == 3
    assert value("celery_queue_length", {"queue_name": "batch"}) == 0
    assert value("zipscore_risk_table_version") == 7
    age = value("zipscore_index_age_seconds", {"base_year": "2004"})
    assert age is not None
    assert 7_190 < age < 7_300
    assert value("zipscore_index_age_seconds", {"base_year": "2013"}) is None
    assert value("zipscore_redis_up") == 1


def test_the_deployment_collector_says_when_redis_is_down() -> None:
    nobody = redis.Redis(
        port=1, socket_connect_timeout=1, retry=no_retry()
    )  # nothing listens on port 1
    registry = CollectorRegistry()
    registry.register(DeploymentCollector(nobody, "p", (2004,)))
    assert registry.get_sample_value("zipscore_redis_up") == 0
    assert registry.get_sample_value("celery_queue_length", {"queue_name": "lookups"}) is None


def test_gateway_metrics_need_a_key_when_keys_are_configured(
    tmp_path: Path, client: Client, eager: list[Any]
) -> None:
    keyed = gateway_settings(tmp_path, metrics=True, gateway_api_keys=(KEY,))
    with TestClient(gateway.create_app(keyed, client=client)) as api:
        assert api.get("/metrics").status_code == 401
        assert api.get("/zipcodes/9000", headers=auth()).status_code == 200
        scrape = api.get("/metrics", headers=auth())
    assert scrape.status_code == 200
    assert scrape.headers["content-type"].startswith("text/plain")
    assert 'zipscore_lookups_total{outcome="answered",question="lookup"' in scrape.text
    assert "/metrics" not in api.app.openapi()["paths"]  # type: ignore[attr-defined]
    metrics.record(False)


def test_a_metrics_key_reads_metrics_and_nothing_else(
    tmp_path: Path, client: Client, eager: list[Any]
) -> None:
    scraper = "m3trics-0123456789abcdef-ro"
    keyed = gateway_settings(
        tmp_path, metrics=True, gateway_api_keys=(KEY,), metrics_keys=(scraper,)
    )
    with TestClient(gateway.create_app(keyed, client=client)) as api:
        assert api.get("/metrics", headers=auth()).status_code == 401  # an API key: no
        assert api.get("/metrics", headers=auth(scraper)).status_code == 200
        assert api.get("/zipcodes/9000", headers=auth(scraper)).status_code == 401
    assert keyed.scrape_keys == (scraper,)
    metrics.record(False)


def test_gateway_has_no_metrics_when_they_are_off(tmp_path: Path, client: Client) -> None:
    with TestClient(gateway.create_app(gateway_settings(tmp_path), client=client)) as api:
        assert api.get("/metrics").status_code == 404


def test_worker_listener_asks_for_a_key_when_there_are_keys() -> None:
    registry = CollectorRegistry()
    Counter("probe", "a probe", registry=registry).inc()
    server = serve(registry, "127.0.0.1", 0, keys=(KEY,))
    url = f"http://127.0.0.1:{server.server_port}/metrics"
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=5)
        assert refused.value.code == 401
        wrong = urllib.request.Request(url, headers=auth("k3y-not-the-one-at-all-00"))
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(wrong, timeout=5)
        good = urllib.request.Request(url, headers=auth())
        with urllib.request.urlopen(good, timeout=5) as answer:
            assert b"probe_total 1.0" in answer.read()
    finally:
        server.shutdown()
        server.server_close()


def test_a_metrics_listener_beyond_loopback_needs_keys(settings_error: Any) -> None:
    open_host = "0.0.0.0"
    message = settings_error({"ZIPSCORE_METRICS": "true", "ZIPSCORE_METRICS_HOST": open_host})
    assert "ZIPSCORE_METRICS_HOST is beyond loopback" in message
    keys = {"ZIPSCORE_METRICS_KEYS": "k3y-0123456789abcdef-one", "ZIPSCORE_METRICS_KEYS_FILE": "x"}
    assert "both set" in settings_error(keys)
    assert is_loopback_host("127.0.0.1")
    assert is_loopback_host("::1")
    assert is_loopback_host("localhost")
    assert not is_loopback_host("10.0.0.1")
