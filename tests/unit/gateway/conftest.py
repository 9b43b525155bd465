"""The gateway's unit fixtures: the eager client (tasks in-process, fakeredis, memory
stores) and gateways over it, without keys and with two."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import fakeredis
import fakeredis.aioredis
import pytest
from fastapi.testclient import TestClient

from producer.client import Client
from producer.gateway import app as gateway
from producer.gateway.cache import AsyncCacheReader
from tests.support.gateway import KEY, OTHER_KEY, Sent, gateway_settings
from worker.contract.batch_store import BatchStore
from worker.contract.index_cache import IndexCache
from worker.contract.result_cache import ResultCache


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
        gateway_settings(tmp_path),
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


@pytest.fixture
def cache_reader(fake_server: fakeredis.FakeServer) -> AsyncCacheReader:
    """The async cache reader on the same fakeredis server as the client's caches."""
    return AsyncCacheReader(fakeredis.aioredis.FakeRedis(server=fake_server), "unit")


@pytest.fixture
def fast_api(
    client: Client, index_eager: Sent, cache_reader: AsyncCacheReader
) -> Iterator[TestClient]:
    """The gateway with its async cache reader: hits are read on the loop."""
    app = gateway.create_app(client.settings, client=client, cache_reader=cache_reader)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def keyed_client(
    tmp_path: Path, cache: ResultCache, index_cache: IndexCache, batch_store: BatchStore
) -> Client:
    """The eager client, its settings with two API keys, one batch a minute, 1 MB uploads."""
    keyed = gateway_settings(
        tmp_path,
        gateway_api_keys=(KEY, OTHER_KEY),
        gateway_batches_per_minute=1,
        gateway_max_upload_mb=1,
    )
    return Client(keyed, cache=cache, index_cache=index_cache, batch_store=batch_store, timeout=1)


@pytest.fixture
def keyed(keyed_client: Client, index_eager: Sent) -> Iterator[TestClient]:
    with TestClient(gateway.create_app(keyed_client.settings, client=keyed_client)) as api:
        yield api
