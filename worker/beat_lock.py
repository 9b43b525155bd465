"""A Redis lock held by the one running Celery beat: `SET key token NX PX ttl`, renewed.

The holder renews well before the TTL runs out; a beat that dies stops renewing and the
lock frees itself after the TTL, so a standby beat takes over. Renewal and release only
touch the lock when it still carries the holder's own token (WATCH/MULTI compare-and-set),
so a beat that lost the lock (paused longer than the TTL) can never extend or free another's.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from typing import Any

import redis


class RedisLock:
    """One named lock with a TTL; `token` says who holds it (host, pid, random)."""

    def __init__(self, client: redis.Redis, key: str, ttl_seconds: float) -> None:
        self._redis = client
        self.key = key
        self.ttl_ms = int(ttl_seconds * 1000)
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def acquire(self) -> bool:
        """Take the lock if nobody holds it; True when this instance holds it now."""
        return bool(self._redis.set(self.key, self.token, nx=True, px=self.ttl_ms))

    def renew(self) -> bool:
        """Extend the TTL; False when the lock is no longer ours."""
        return self._if_ours(lambda pipe: pipe.pexpire(self.key, self.ttl_ms))

    def release(self) -> bool:
        """Free the lock if it is still ours."""
        return self._if_ours(lambda pipe: pipe.delete(self.key))

    def _if_ours(self, change: Callable[[Any], object]) -> bool:
        def check_then_change(pipe: Any) -> bool:
            if pipe.get(self.key) != self.token.encode():
                return False
            pipe.multi()
            change(pipe)
            return True

        outcome: Any = self._redis.transaction(
            check_then_change,  # type: ignore[arg-type]  # redis-py types it as returning None
            self.key,
            value_from_callable=True,
        )
        return bool(outcome)

    def holder(self) -> str | None:
        """The token of whoever holds the lock, if anyone."""
        raw = self._redis.get(self.key)
        return raw.decode() if isinstance(raw, bytes) else raw
