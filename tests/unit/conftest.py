"""Unit tier: tasks run eagerly, Redis is fakeredis, stores are in memory. No network.

`eager` also installs a fakeredis `batch_store`, so batch jobs run in-process end to end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import pytest
from celery import Celery
from click.testing import CliRunner

from tests.support.fakes import (
    SAMPLE_RULES,
    STATBEL_TEST_URL,
    DictZipcodeStore,
    MemoryHealthIndexStore,
)
from worker import runtime
from worker.celery_app import app
from worker.contract.batch_store import BatchStore
from worker.contract.index_cache import IndexCache
from worker.contract.result_cache import ResultCache
from worker.index.statbel import StatbelSource


@pytest.fixture
def redis_client() -> Iterator[fakeredis.FakeRedis]:
    client = fakeredis.FakeRedis()
    yield client
    client.flushall()


@pytest.fixture
def cache(redis_client: fakeredis.FakeRedis) -> ResultCache:
    return ResultCache(redis_client, "unit", ttl_seconds=60)


@pytest.fixture
def batch_store(redis_client: fakeredis.FakeRedis) -> BatchStore:
    return BatchStore(redis_client, "unit", ttl_seconds=600)


@pytest.fixture
def store() -> DictZipcodeStore:
    return DictZipcodeStore(list(SAMPLE_RULES))


@pytest.fixture
def eager(
    store: DictZipcodeStore,
    cache: ResultCache,
    batch_store: BatchStore,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[list[tuple[str, tuple[Any, ...]]]]:
    """Tasks sent by name run in-process against the dict store and fakeredis.

    Yields the list of (task name, args) sent, so tests can see what reached the "queue".
    """
    sent: list[tuple[str, tuple[Any, ...]]] = []

    def send_task(
        sender: Celery,
        name: str,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        **_: Any,
    ) -> Any:
        sent.append((name, tuple(args)))
        return app.tasks[name].apply(args=args, kwargs=kwargs)

    app.loader.import_default_modules()
    # Producers send through their own app (worker.contract.messaging): every app's
    # send_task runs the worker app's task here instead of publishing it.
    monkeypatch.setattr(Celery, "send_task", send_task)
    runtime.use(store=store, cache=cache, batch=batch_store)
    yield sent
    runtime.use()


@pytest.fixture
def index_store() -> MemoryHealthIndexStore:
    return MemoryHealthIndexStore()


@pytest.fixture
def index_cache(redis_client: fakeredis.FakeRedis) -> IndexCache:
    return IndexCache(redis_client, "unit", ttl_seconds=60)


@pytest.fixture
def index_eager(
    eager: list[tuple[str, tuple[Any, ...]]],
    index_store: MemoryHealthIndexStore,
    index_cache: IndexCache,
) -> Iterator[list[tuple[str, tuple[Any, ...]]]]:
    """Index tasks run eagerly against memory and fakeredis; Statbel is STATBEL_TEST_URL,
    to be mocked with respx (an unmocked request fails: respx refuses real network)."""
    source = StatbelSource(STATBEL_TEST_URL, timeout=2.0, max_bytes=5_000_000)
    runtime.use_index(store=index_store, cache=index_cache, source=source)
    yield eager
    runtime.use_index()


@pytest.fixture
def settings_error(monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Set environment variables, load the settings, return the SettingsError's message."""
    from worker.contract.settings import SettingsError, get_settings

    def load(env: dict[str, str]) -> str:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        try:
            with pytest.raises(SettingsError) as caught:
                get_settings()
        finally:
            get_settings.cache_clear()
        return str(caught.value)

    return load


@pytest.fixture
def runner(
    eager: list[tuple[str, tuple[Any, ...]]], cache: ResultCache, monkeypatch: pytest.MonkeyPatch
) -> CliRunner:
    """The CLI in-process over the eager client (tasks run here, fakeredis, memory stores)."""
    from producer.cli import main as cli
    from producer.client import Client

    monkeypatch.setattr(cli, "make_client", lambda: Client(cache=cache, timeout=1.0))
    return CliRunner()
