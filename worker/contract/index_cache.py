"""The latest health index per base year in Redis, read by producers before they enqueue.

Workers write `<prefix>:cache:index:latest:<base year>` after every successful refresh and
every `index.latest` answered from Postgres. The entry holds the answer without `stale`:
staleness depends on the reader's clock, so `with_staleness` adds it when the entry is read
and a cached answer turns stale by itself when refreshes stop succeeding.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from worker.contract.result_cache import redis_client
from worker.contract.settings import Settings, get_settings


def with_staleness(
    entry: dict[str, Any], stale_after_seconds: int, now: datetime
) -> dict[str, Any]:
    """The contract's answer: `entry` plus `stale`, true when `fetched_at` is too old."""
    fetched_at = datetime.fromisoformat(str(entry["fetched_at"]))
    stale = now - fetched_at > timedelta(seconds=stale_after_seconds)
    return {**entry, "stale": stale}


def utcnow() -> datetime:
    return datetime.now(UTC)


class IndexCache:
    """Latest answers per base year; values are JSON, never pickles."""

    def __init__(self, client: redis.Redis, prefix: str, ttl_seconds: int) -> None:
        self._redis = client
        self._prefix = f"{prefix}:cache:index:latest"
        self._ttl = ttl_seconds

    def key(self, base_year: int) -> str:
        return f"{self._prefix}:{base_year}"

    def get(self, base_year: int) -> dict[str, Any] | None:
        """The cached entry (without `stale`), or None."""
        raw = self._redis.get(self.key(base_year))
        if raw is None:
            return None
        value: dict[str, Any] = json.loads(raw)
        return value

    def put(self, entry: dict[str, Any]) -> None:
        """Cache one base year's entry (`base_year`, `index`, `period`, `fetched_at`)."""
        self._redis.set(self.key(int(entry["base_year"])), json.dumps(entry), ex=self._ttl)

    def forget(self, base_year: int) -> None:
        self._redis.delete(self.key(base_year))


def index_cache_from_settings(settings: Settings | None = None) -> IndexCache:
    settings = settings or get_settings()
    return IndexCache(
        redis_client(settings.cache), settings.redis_prefix, settings.cache_ttl_seconds
    )
