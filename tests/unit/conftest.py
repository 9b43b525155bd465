"""Unit tier: tasks run eagerly, Redis is fakeredis, stores are in memory. No network.

`eager` also installs a fakeredis `batch_store`, so batch jobs run in-process end to end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import fakeredis
import pytest
from celery import Celery
from click.testing import CliRunner

from worker import runtime
from worker.celery_app import app
from worker.contract.batch_store import BatchStore
from worker.contract.index_cache import IndexCache
from worker.contract.result_cache import ResultCache
from worker.index.document import IndexMonth
from worker.index.statbel import StatbelSource
from worker.index.store import Latest, StoreReport
from worker.lookups.risk_table import Rule, expand


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

    def current_version(self) -> int:
        self.queries += 1
        return self.version

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


class MemoryHealthIndexStore:
    """The health index history in memory, with the Postgres store's upsert semantics."""

    def __init__(self) -> None:
        self.rows: dict[tuple[int, date], tuple[Decimal, datetime]] = {}
        self.refreshes: list[tuple[datetime, tuple[int, ...]]] = []
        self.now = datetime.now(UTC)

    def is_empty(self) -> bool:
        return not self.rows

    def store(self, months: Sequence[IndexMonth]) -> StoreReport:
        new = changed = 0
        for month in months:
            key = (month.base_year, month.period)
            if key not in self.rows:
                new += 1
            elif self.rows[key][0] != month.value:
                changed += 1
            else:
                continue
            self.rows[key] = (month.value, self.now)
        base_years = tuple(sorted({m.base_year for m in months}))
        self.refreshes.append((self.now, base_years))
        return StoreReport(base_years, len(months), new, changed, self.now)

    def latest(self, base_year: int) -> Latest | None:
        periods = [period for (year, period) in self.rows if year == base_year]
        if not periods:
            return None
        value, fetched_at = self.rows[(base_year, max(periods))]
        confirmed = [at for at, years in self.refreshes if base_year in years]
        return Latest(base_year, max(periods), value, max(confirmed, default=fetched_at))

    def remove(self, base_year: int, period: date) -> Decimal | None:
        found = self.rows.pop((base_year, period), None)
        return None if found is None else found[0]


STATBEL_TEST_URL = "https://statbel.test/bestat/api/views/health-index/result/JSON"


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
