"""kombu's Redis transport, whose channels say "connection error" once their connection is gone.

When Redis goes away while a worker holds an unacknowledged message and waits in BRPOP for
the next, Celery 5.7 tears the lost connection down (`collect()`, which detaches the
transport from its connection) and then closes it again. Closing a Redis channel restores
the messages it holds, and a task that finishes later acknowledges through the same
channel; both need a new Redis connection pool, built from `transport.client`, now None.
kombu's channel raised AttributeError there, which Celery takes as unrecoverable: the
worker exited. Here it raises redis's ConnectionError, which Celery and kombu already
treat as a lost connection: the close is skipped, the acknowledgement is logged as failed,
and the worker reconnects. The messages stay in Redis's unacknowledged set and are
delivered again after the visibility timeout (tasks are idempotent). The drill
tests/drills/test_broker_restart.py restarts Redis under a worker with a task in hand.

`use()` (called by worker/celery_app.py) makes it the transport of redis:// and rediss://
URLs in this process, for producers and workers alike. Registering it under kombu's own
aliases, rather than naming it in `broker_transport`, keeps the URL scheme `redis` wherever
kombu prints or parses the broker URL (Flower's broker page, the worker's banner).
"""

from __future__ import annotations

from typing import Any

import redis
from kombu.transport import TRANSPORT_ALIASES, _transport_cache
from kombu.transport import redis as kombu_redis

from worker.broker_memory import PatientChannel


class Channel(PatientChannel):  # waits while Redis is out of memory: worker/broker_memory.py
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if getattr(self.connection, "client", None) is None:  # closed, or channel detached
            raise redis.ConnectionError("the broker connection of this channel is closed")
        params: dict[str, Any] = super()._connparams(asynchronous=asynchronous)  # type: ignore[no-untyped-call]
        return params


class Transport(kombu_redis.Transport):
    Channel = Channel


def use() -> None:
    """Make this module's Transport the one for redis:// and rediss:// broker URLs."""
    for scheme in ("redis", "rediss"):
        TRANSPORT_ALIASES[scheme] = f"{__name__}:Transport"
        _transport_cache.pop(scheme, None)  # kombu's class, if resolved before this call
