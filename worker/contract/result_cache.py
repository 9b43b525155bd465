"""The Redis result cache, read by producers before they enqueue and written by workers.

Keys carry the risk table's version (`<prefix>:cache:v<version>:lookup:<zipcode>`), and the
current version lives at `<prefix>:cache:risk-table-version`. A reload publishes a new
version, so every answer cached for the old table stops being read at once; the old keys
simply expire. A missing version key (a flushed Redis) means "no cache": producers go to
the queue and the next worker answer publishes the version again.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from worker.contract.redis_errors import is_out_of_memory
from worker.contract.sentinel import master_client
from worker.contract.settings import Settings, get_settings

LOOKUP = "lookup"
BY_RISK_FACTOR = "risk-factor"


class ResultCache:
    """Versioned answers in Redis; values are JSON, never pickles."""

    def __init__(self, client: redis.Redis, prefix: str, ttl_seconds: int) -> None:
        self._redis = client
        self._prefix = f"{prefix}:cache"
        self._ttl = ttl_seconds

    @property
    def version_key(self) -> str:
        return f"{self._prefix}:risk-table-version"

    def key(self, version: int, kind: str, name: object) -> str:
        return f"{self._prefix}:v{version}:{kind}:{name}"

    def table_version(self) -> int | None:
        raw = self._redis.get(self.version_key)
        return int(raw) if raw is not None else None

    def publish_version(self, version: int) -> None:
        """Make `version` current unless a newer one already is (versions never go back)."""

        def raise_to(pipe: Any) -> None:
            current = pipe.get(self.version_key)
            if current is None or int(current) < version:
                pipe.multi()
                pipe.set(self.version_key, version)

        self._redis.transaction(raise_to, self.version_key)

    def get(self, kind: str, name: object) -> dict[str, Any] | None:
        """The answer cached for the current table version, or None."""
        version = self.table_version()
        if version is None:
            return None
        raw = self._redis.get(self.key(version, kind, name))
        if raw is None:
            return None
        value: dict[str, Any] = json.loads(raw)
        return value

    def put(self, version: int, kind: str, name: object, answer: dict[str, Any]) -> int:
        """Cache an answer computed from table `version`, and make that version known.

        Returns the version published once the answer is written: one newer than `version`
        means the answer came from a table that a load has since replaced.
        """
        # One round trip in the common case (the version is already current); the guarded
        # transaction only when this answer's version is newer than the published one.
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.set(self.key(version, kind, name), json.dumps(answer), ex=self._ttl)
            pipe.get(self.version_key)
            _, current = pipe.execute()
            if current is None or int(current) < version:
                self.publish_version(version)
                return version
        except redis.ResponseError as exc:
            if not is_out_of_memory(exc):
                raise
            # Redis at maxmemory: the answer is still given, just not cached (the cache is
            # an optimisation, and the result store needs the room more).
            return version
        return int(current)


def redis_client(url: str, *, big_values: bool = False) -> redis.Redis:
    """A client of the Redis at `url`; of the group's primary when Redis is behind Sentinel.

    `big_values`: commands carry values of megabytes (batch chunks), sent as they are.
    """
    settings = get_settings()
    options: dict[str, Any] = {"socket_connect_timeout": 2, "socket_timeout": 5}
    if big_values:
        options["command_packer"] = unjoined_packer()
    if settings.sentinels and settings.sentinel_master:
        return master_client(url, settings.sentinel_addresses, settings.sentinel_master, **options)
    return redis.Redis.from_url(url, **options)


def unjoined_packer() -> Any:
    """redis-py's own Python command packer: a value over 6,000 bytes goes out as a piece of
    its own. hiredis's packer (redis-py's default where hiredis is installed) copies every
    value into one buffer with its command, at 2.5 ms for a 2 MB chunk. Replies are still
    read by hiredis."""
    from redis._parsers import Encoder
    from redis.connection import PythonRespSerializer

    encoder = Encoder("utf-8", "strict", False)  # type: ignore[no-untyped-call]
    return PythonRespSerializer(6000, encoder.encode)


def cache_from_settings(settings: Settings | None = None) -> ResultCache:
    settings = settings or get_settings()
    return ResultCache(
        redis_client(settings.cache), settings.redis_prefix, settings.cache_ttl_seconds
    )
