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

Every message popped from a queue is checked first (worker/broker/envelope.py): one that is not
an envelope kombu can use, or on a task queue not a task as zipscore sends it, is refused
before kombu or Celery see it. The refusal is logged once (queue, id and task when they
can be read, a short reason, never the body) and the raw message is kept in a capped
dead-letter list `<prefix>:deadletter` (newest first, `DEADLETTER_MAX` entries, gone
`DEADLETTER_TTL_SECONDS` after the last refusal) for an operator to read with LRANGE.
The drill tests/drills/test_hostile_messages.py pushes raw bytes at a real worker.

`use()` (called by worker/celery_app.py) makes it the transport of redis:// and rediss://
URLs in this process, for producers and workers alike. Registering it under kombu's own
aliases, rather than naming it in `broker_transport`, keeps the URL scheme `redis` wherever
kombu prints or parses the broker URL (Flower's broker page, the worker's banner).
"""

from __future__ import annotations

import heapq
import json
import logging
import time
from datetime import UTC, datetime
from queue import Empty
from typing import Any

import redis
from kombu.transport import TRANSPORT_ALIASES, _transport_cache
from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str

from worker.broker import envelope
from worker.broker.memory import PatientChannel

logger = logging.getLogger(__name__)

DEADLETTER_KEY = "deadletter"
DEADLETTER_MAX = 1_000
DEADLETTER_TTL_SECONDS = 7 * 86_400
# A refused message is kept whole up to this size, cut beyond (the log never shows it).
DEADLETTER_MESSAGE_BYTES = 16_384


def is_zipscore_task(name: str) -> bool:
    """A task registered by zipscore's task modules (Celery's built-in `celery.*` are not)."""
    from worker.celery_app import app  # the one app; imported late, it imports this module

    return not name.startswith("celery.") and name in app.tasks


class Channel(PatientChannel):
    """kombu's Redis channel that checks each message before kombu builds a Message of it,
    and waits while Redis is out of memory (worker/broker/memory.py)."""

    from_transport_options = (  # type: ignore[assignment]  # kombu's is a fixed tuple
        *PatientChannel.from_transport_options,
        "task_queues",
        "max_eta_seconds",
        "max_time_limit",
        "max_eta_messages",
    )
    task_queues: tuple[str, ...] = ()
    max_eta_seconds: float = 300.0
    max_time_limit: float = 90.0
    max_eta_messages: int = 5_000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # When the ETAs delivered by this channel fall due (a heap of timestamps): Celery
        # holds each such message in memory until then, so their number is capped.
        self._waiting: list[float] = []
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if getattr(self.connection, "client", None) is None:  # closed, or channel detached
            raise redis.ConnectionError("the broker connection of this channel is closed")
        params: dict[str, Any] = super()._connparams(asynchronous=asynchronous)  # type: ignore[no-untyped-call]
        return params

    @property
    def rules(self) -> envelope.Rules:
        return envelope.Rules(
            task_queues=self.task_queues,
            is_task=is_zipscore_task,
            max_eta_seconds=self.max_eta_seconds,
            max_time_limit=self.max_time_limit,
        )

    def _admit(self, item: bytes, queue: str) -> dict[str, Any] | None:
        """The envelope of `item` when it may be delivered; None once it is refused."""
        try:
            message = envelope.check(item, queue, self.rules, datetime.now(UTC))
            if queue in self.task_queues:
                self._wait_for(envelope.eta_of(message), message["headers"])
        except envelope.Refused as refused:
            self._refuse(item, queue, refused)
            return None
        except Exception as exc:  # a fault of the check itself must not stop the worker
            self._refuse(item, queue, envelope.Refused(f"the check failed ({exc!r:.80})"))
            return None
        return message

    def _wait_for(self, eta: datetime | None, headers: dict[str, Any]) -> None:
        """Count a message held for its ETA; Refused when too many are held already."""
        now = time.time()
        while self._waiting and self._waiting[0] <= now:
            heapq.heappop(self._waiting)
        if eta is None or eta.timestamp() <= now:
            return
        if len(self._waiting) >= self.max_eta_messages:
            raise envelope.Refused(
                f"{len(self._waiting)} messages already wait for their ETA, the most one "
                "worker holds",
                headers.get("id"),
                headers.get("task"),
            )
        heapq.heappush(self._waiting, eta.timestamp())

    def _receive_one(self, c: Any) -> Any:
        # kombu decodes a broadcast before `_deliver_fanout_message` and catches only
        # TypeError and ValueError: a PUBLISH of JSON nested deeper than the interpreter's
        # recursion limit raised RecursionError out of the worker's event loop.
        try:
            return super()._receive_one(c)  # type: ignore[no-untyped-call]
        except RecursionError:
            logger.error("refused broadcast: its JSON is nested too deeply to decode")
            raise Empty() from None

    def _deliver_fanout_message(self, message: object, exchange: str) -> bool:
        # A broadcast (remote control, events), which kombu has parsed: PUBLISH of a JSON
        # list on the control channel stopped the worker too.
        queue = self._fanout_to_queue[exchange]
        try:
            envelope.admit(message, queue, self.rules, datetime.now(UTC))
        except envelope.Refused as refused:
            self._refuse(json.dumps(message, default=repr).encode(), queue, refused)
            return False
        except Exception as exc:  # a fault of the check itself must not stop the worker
            failed = envelope.Refused(f"the check failed ({exc!r:.80})")
            self._refuse(repr(message)[:DEADLETTER_MESSAGE_BYTES].encode(), queue, failed)
            return False
        delivered: bool = super()._deliver_fanout_message(message, exchange)  # type: ignore[no-untyped-call]
        return delivered

    def _refuse(self, item: bytes, queue: str, refused: envelope.Refused) -> None:
        logger.error(
            "refused message on queue %s id=%s task=%s: %s",
            queue, refused.task_id or "-", refused.task or "-", refused.reason,
        )  # fmt: skip
        record = json.dumps(
            {
                "queue": queue,
                "reason": refused.reason,
                "refused_at": datetime.now(UTC).isoformat(),
                "bytes": len(item),
                "message": item[:DEADLETTER_MESSAGE_BYTES].decode("utf-8", "replace"),
            }
        )
        try:
            with self.conn_or_acquire() as client, client.pipeline() as pipe:
                # The client prefixes LPUSH and PEXPIRE keys, not LTRIM's: name it whole.
                pipe.lpush(DEADLETTER_KEY, record)
                pipe.ltrim(f"{self.global_keyprefix}{DEADLETTER_KEY}", 0, DEADLETTER_MAX - 1)
                pipe.pexpire(DEADLETTER_KEY, DEADLETTER_TTL_SECONDS * 1000)
                pipe.execute()
        except redis.RedisError as exc:  # the message is refused all the same
            logger.warning("refused message not kept in the dead-letter list: %r", exc)

    # kombu's own, but for `_admit` between reading the reply and delivering the message.
    def _brpop_read(self, **options: Any) -> bool:
        try:
            try:
                dest__item = self.client.parse_response(self.client.connection, "BRPOP", **options)
            except self.connection_errors:
                # As kombu: disconnect so the next iteration reconnects.
                self.client.connection.disconnect()
                raise
            if not dest__item:
                raise Empty()
            dest, item = dest__item
            dest = bytes_to_str(dest).rsplit(self.sep, 1)[0]  # type: ignore[no-untyped-call]
            self._queue_cycle.rotate(dest)
            message = self._admit(item, dest)
            if message is not None:
                self.connection._deliver(message, dest)
            return True
        finally:
            self._in_poll = None  # type: ignore[assignment]
            self._flush_brpop_reauth()  # type: ignore[no-untyped-call]


class Transport(kombu_redis.Transport):
    Channel = Channel


def use() -> None:
    """Make this module's Transport the one for redis:// and rediss:// broker URLs."""
    for scheme in ("redis", "rediss"):
        TRANSPORT_ALIASES[scheme] = f"{__name__}:Transport"
        _transport_cache.pop(scheme, None)  # kombu's class, if resolved before this call
