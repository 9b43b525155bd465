"""The gateway's fast path: the producer client's cache reads, made with redis.asyncio.

    reader = AsyncCacheReader.from_settings(settings)
    answer = await reader.lookup(LOOKUP, 9000)       # the cached dict, or None
    entry = await reader.index(2004)                 # the cached entry (without `stale`), or None

Same keys and values as `worker.contract.result_cache.ResultCache` and
`worker.contract.index_cache.IndexCache` (their key functions are used, nothing is
re-derived), read on the event loop without a thread. A hit answers at once; a miss, or
any trouble with Redis, returns None and the handler asks a worker through the client's
`*_uncached` questions (on a thread), which do not read the cache a second time. The
cache stays an optimisation: an error here never becomes an answer.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import redis
import redis.asyncio
from redis.asyncio import sentinel as async_sentinel

from worker.contract.index_cache import IndexCache
from worker.contract.result_cache import ResultCache
from worker.contract.settings import Settings

logger = logging.getLogger(__name__)


class AsyncCacheReader:
    """Read-only, asynchronous view of the result cache and the index cache."""

    def __init__(self, client: redis.asyncio.Redis, prefix: str) -> None:
        self._redis = client
        # Only their key functions are used; the sync clients behind them are never called.
        self._keys = ResultCache(None, prefix, 1)  # type: ignore[arg-type]
        self._index_keys = IndexCache(None, prefix, 1)  # type: ignore[arg-type]

    @classmethod
    def from_settings(cls, settings: Settings) -> AsyncCacheReader:
        client = redis.asyncio.Redis.from_url(
            settings.cache, socket_connect_timeout=2, socket_timeout=5
        )
        if settings.sentinels and settings.sentinel_master:  # follow the promoted primary
            options = client.connection_pool.connection_kwargs
            finder = async_sentinel.Sentinel(  # type: ignore[no-untyped-call]
                list(settings.sentinel_addresses),
                sentinel_kwargs={"socket_connect_timeout": 2, "socket_timeout": 5},
            )
            client = finder.master_for(
                settings.sentinel_master,
                db=options.get("db", 0),
                username=options.get("username"),
                password=options.get("password"),
                socket_connect_timeout=2,
                socket_timeout=5,
            )
        return cls(client, settings.redis_prefix)

    async def lookup(self, kind: str, name: object) -> dict[str, Any] | None:
        """The answer cached for the current table version, or None."""
        try:
            version = await self._redis.get(self._keys.version_key)
            if version is None:
                return None
            raw = await self._redis.get(self._keys.key(int(version), kind, name))
        except (redis.RedisError, OSError, RuntimeError) as exc:
            # RuntimeError: a pooled connection of an event loop that has closed.
            logger.debug("async cache read failed (%s); asking the client", type(exc).__name__)
            return None
        return _decode(raw)

    async def index(self, base_year: int) -> dict[str, Any] | None:
        """The cached index entry for a base year (without `stale`), or None."""
        try:
            raw = await self._redis.get(self._index_keys.key(base_year))
        except (redis.RedisError, OSError, RuntimeError) as exc:
            logger.debug("async cache read failed (%s); asking the client", type(exc).__name__)
            return None
        return _decode(raw)


def _decode(raw: bytes | str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    value = json.loads(raw)
    return value if isinstance(value, dict) else None
