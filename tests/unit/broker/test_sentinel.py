"""Redis behind Sentinel: settings, the URLs Celery gets, and the transport kombu picks."""

from __future__ import annotations

import pytest
from kombu import Connection
from kombu.transport import redis as kombu_redis
from pydantic import RedisDsn, ValidationError

from worker.broker import memory as broker_memory
from worker.broker import patient_results
from worker.broker import sentinel as broker_sentinel
from worker.broker import transport as broker_transport
from worker.celery_app import celery_config, create_app
from worker.contract.settings import Settings

SENTINELS = "10.0.0.5:26379,10.0.0.6:26380"


def behind_sentinel(url: str = "redis://:s3cret@ignored:6379/2") -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        redis_url=RedisDsn(url),
        sentinels=SENTINELS,  # type: ignore[arg-type]  # parsed like the environment's text
        sentinel_master="zipscore",
    )


def test_the_default_stays_one_redis_url() -> None:
    config = celery_config(Settings(_env_file=None))  # type: ignore[call-arg]
    assert config["broker_url"].startswith("redis://")
    assert "master_name" not in config["broker_transport_options"]


def test_sentinels_give_sentinel_urls_with_password_and_database() -> None:
    config = celery_config(behind_sentinel())
    expected = "sentinel://:s3cret@10.0.0.5:26379/2;sentinel://:s3cret@10.0.0.6:26380/2"
    assert config["broker_url"] == expected
    assert config["result_backend"] == expected
    assert config["broker_transport_options"]["master_name"] == "zipscore"
    assert config["result_backend_transport_options"]["master_name"] == "zipscore"
    # zipscore's own transport options stay (message checks, visibility timeout, prefix).
    assert config["broker_transport_options"]["task_queues"]
    assert config["broker_transport_options"]["global_keyprefix"].endswith(":")


@pytest.mark.parametrize(
    "fields",
    [
        {"sentinels": SENTINELS},
        {"sentinel_master": "zipscore"},
        {"sentinels": "10.0.0.5", "sentinel_master": "zipscore"},
        {"sentinels": "10.0.0.5:99999", "sentinel_master": "zipscore"},
    ],
)
def test_sentinel_settings_are_refused_when_incomplete(fields: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        Settings(_env_file=None, **fields)  # type: ignore[call-arg, arg-type]


def test_sentinel_urls_use_zipscore_s_channel_and_result_backend() -> None:
    app = create_app(behind_sentinel())
    with Connection(app.conf.broker_url, transport_options={"master_name": "zipscore"}) as conn:
        transport = conn.transport_cls
        channel = conn.transport.Channel
    assert transport == f"{broker_sentinel.__name__}:SentinelTransport" or issubclass(
        conn.transport.__class__, broker_sentinel.SentinelTransport
    )
    assert issubclass(channel, broker_transport.Channel)  # checks, dead-letters
    assert issubclass(channel, broker_memory.PatientChannel)  # out-of-memory patience
    assert issubclass(channel, kombu_redis.SentinelChannel)  # asks Sentinel for the primary
    assert "master_name" in channel.from_transport_options
    assert "max_eta_messages" in channel.from_transport_options
    backend = app.backend
    assert isinstance(backend, broker_sentinel.PatientSentinelBackend)
    assert isinstance(backend, patient_results.PatientBackend)


def test_direct_clients_ask_the_sentinels_for_the_primary(monkeypatch: pytest.MonkeyPatch) -> None:
    from redis.asyncio.sentinel import SentinelConnectionPool as AsyncSentinelPool
    from redis.sentinel import SentinelConnectionPool

    from producer.gateway.cache import AsyncCacheReader
    from worker.contract.result_cache import redis_client
    from worker.contract.settings import get_settings

    monkeypatch.setenv("ZIPSCORE_SENTINELS", SENTINELS)
    monkeypatch.setenv("ZIPSCORE_SENTINEL_MASTER", "zipscore")
    get_settings.cache_clear()
    try:
        client = redis_client("redis://:s3cret@ignored:6379/2")
        pool = client.connection_pool
        assert isinstance(pool, SentinelConnectionPool)
        assert pool.service_name == "zipscore"
        assert pool.connection_kwargs["db"] == 2
        assert pool.connection_kwargs["password"] == "s3cret"
        reader = AsyncCacheReader.from_settings(behind_sentinel())
        assert isinstance(reader._redis.connection_pool, AsyncSentinelPool)
    finally:
        get_settings.cache_clear()
