"""Redis behind Sentinel, for both sides: the sentinel:// URLs and a client of the primary.

Set both, and every Redis connection of zipscore asks the Sentinels which server is the
primary of the group, now and after each failover:

    ZIPSCORE_SENTINELS=10.0.0.5:26379,10.0.0.6:26379,10.0.0.7:26379
    ZIPSCORE_SENTINEL_MASTER=zipscore

The Redis URLs (ZIPSCORE_REDIS_URL and the broker, result and cache URLs) then give the
password and the database number only; their host and port are not used. Unset (the
default), zipscore connects to the URLs' host as before. The broker and the result backend
take `sentinel_url` (worker/contract/messaging.py); direct clients (the result cache, the
batch store, the beat lock, readiness checks) take `master_client`, whose connections find
the primary again after a failover. The worker's own transport on top of kombu's Sentinel
one is worker/broker/sentinel.py.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote, urlsplit

import redis
import redis.sentinel


def url_parts(url: str) -> tuple[str | None, str | None, int]:
    parts = urlsplit(url)
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    path = parts.path.strip("/")
    return user, password, int(path) if path.isdigit() else 0


def sentinel_url(url: str, sentinels: tuple[tuple[str, int], ...]) -> str:
    """`sentinel://[:password@]host:port/db;...` for kombu and Celery, from a Redis URL."""
    user, password, db = url_parts(url)
    auth = ""
    if password is not None:
        auth = f"{quote(user or '', safe='')}:{quote(password, safe='')}@"
    return ";".join(f"sentinel://{auth}{host}:{port}/{db}" for host, port in sentinels)


def master_client(
    url: str, sentinels: tuple[tuple[str, int], ...], master: str, **options: Any
) -> redis.Redis:
    """A client of the group's current primary, with `url`'s password and database."""
    user, password, db = url_parts(url)
    timeouts = {k: v for k, v in options.items() if k.startswith("socket_")}
    finder = redis.sentinel.Sentinel(list(sentinels), sentinel_kwargs=timeouts)  # type: ignore[no-untyped-call]
    client: redis.Redis = finder.master_for(  # type: ignore[no-untyped-call]
        master, db=db, username=user, password=password, **options
    )
    return client
