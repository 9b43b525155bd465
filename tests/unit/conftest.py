"""Unit tier: tasks run eagerly, Redis is fakeredis, the risk table is a dict. No network.

`eager` also installs a fakeredis `batch_store`, so batch jobs run in-process end to end.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest

from worker import runtime
from worker.batch_store import BatchStore
from worker.cache import ResultCache
from worker.celery_app import app
from worker.risk_table import Rule, expand


class DictZipcodeStore:
    """The risk table in memory, with a version bumped by `load` like the real table."""

    def __init__(self, rules: list[Rule]) -> None:
        self.version = 0
        self.table: dict[int, str] = {}
        self.queries = 0
        self.load(rules)

    def load(self, rules: list[Rule]) -> None:
        self.table = dict(expand(rules))
        self.version += 1

    def lookup(self, zipcode: int) -> tuple[int, str | None]:
        self.queries += 1
        return self.version, self.table.get(zipcode)

    def by_risk_factor(self, risk_factor: str) -> tuple[int, list[int]]:
        self.queries += 1
        return self.version, sorted(z for z, f in self.table.items() if f == risk_factor)

    def snapshot(self) -> tuple[int, dict[int, str]]:
        self.queries += 1
        return self.version, dict(self.table)


SAMPLE_RULES = [
    Rule(1000, 1310, "C"),
    Rule(1315, 1315, "B"),
    Rule(9000, 9169, "B"),
    Rule(9170, 9240, "A"),
]


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

    def send_task(name: str, args: tuple[Any, ...] = (), **_: Any) -> Any:
        sent.append((name, tuple(args)))
        return app.tasks[name].apply(args=args)

    app.loader.import_default_modules()
    monkeypatch.setattr(app, "send_task", send_task)
    runtime.use(store=store, cache=cache, batch=batch_store)
    yield sent
    runtime.use()
