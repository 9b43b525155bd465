"""A worker that waits while Redis is out of memory, instead of exiting or losing a message.

With `maxmemory` reached and the `noeviction` policy, Redis refuses every command that may
grow its memory (SET, HSET, ZADD, LPUSH, RPUSH) and, since Redis 7, every command queued
in a MULTI transaction, with "OOM command not allowed" (redis-py's OutOfMemoryError, a
ResponseError, which kombu and Celery take as unrecoverable: the worker exited). Where the
worker meets it, and what it does here instead:

- recording a message it just took with BRPOP as unacknowledged (kombu's `QoS.append`,
  a MULTI of ZADD and HSET): it waits, retrying with backoff, until Redis accepts it. The
  message is in no Redis key meanwhile, so the consumer takes no other: backpressure.
  At shutdown it keeps trying for `SHUTDOWN_GRACE_SECONDS`, then logs the whole message
  (an operator can send it again) rather than hang;
- acknowledging (kombu's MULTI of ZREM and HDEL): sent outside a transaction, where Redis
  accepts both since they free memory;
- putting a message back on its queue (a restore at shutdown, a periodic restore of
  messages past their visibility timeout, a requeue): left for later. The message stays in
  the unacknowledged set, and a restore once Redis has room delivers it again;
- taking the next message: BRPOP frees memory, so Redis serves it at maxmemory; the
  channel takes none while a probe write is refused (`PatientChannel`), which leaves only
  a message taken in the instant Redis fills up to wait in the worker's hands;
- storing a task's result (pool process): see worker/broker/patient_results.py;
- writing the lookup cache: skipped (worker/contract/result_cache.py), the answer is still stored.

A waiting worker logs one warning when it starts waiting and one line when Redis has room
again. Installed by worker/broker/transport.py (the channel's QoS).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import redis
from billiard.process import current_process  # type: ignore[import-untyped]
from celery import signals
from celery.exceptions import SoftTimeLimitExceeded
from celery.worker import state as worker_state
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual

from worker.contract.redis_errors import is_out_of_memory

logger = logging.getLogger(__name__)

T = TypeVar("T")
FIRST_WAIT_SECONDS = 0.1
LONGEST_WAIT_SECONDS = 2.0
# How long a worker that was asked to stop still tries to record a message it holds.
SHUTDOWN_GRACE_SECONDS = 10.0
MEMORY_PROBE_KEY = "memory-probe"  # under the deployment's key prefix
OOM_MESSAGE = "Redis is out of memory (maxmemory reached, policy noeviction)"


def _delays() -> Iterator[float]:
    delay = FIRST_WAIT_SECONDS
    while True:
        yield delay
        delay = min(delay * 2, LONGEST_WAIT_SECONDS)


def _stopping() -> bool:
    """Whether this worker was asked to stop (SIGTERM, SIGINT, SIGQUIT)."""
    # As Celery's own check: the flags hold an exit code, and a warm shutdown's is 0.
    flags = (worker_state.should_stop, worker_state.should_terminate)
    return any(flag is not None and flag is not False for flag in flags)


def wait_for_memory(
    operation: Callable[[], T],
    what: str,
    *,
    give_up: Callable[[float], bool] = lambda waited: False,
) -> T:
    """`operation()`, retried with backoff while Redis refuses it for lack of memory.

    `give_up(seconds waited)` ends the wait: the last refusal is raised.
    """
    started: float | None = None
    for delay in _delays():
        try:
            result = operation()
        except redis.RedisError as exc:
            if not is_out_of_memory(exc):
                raise
            waited = 0.0 if started is None else time.monotonic() - started
            if started is None:
                started = time.monotonic()
                logger.warning("%s: waiting to %s", OOM_MESSAGE, what)
            elif give_up(waited):
                raise
            try:
                time.sleep(delay)
            except SoftTimeLimitExceeded:
                raise exc from None  # the task's time is up: report the refusal itself
            continue
        if started is not None:
            logger.warning(
                "Redis has room again: %s after %.1f s", what, time.monotonic() - started
            )
        return result
    raise AssertionError("unreachable")  # pragma: no cover


class ThisProcess:
    in_worker = False  # set when this process is (or was forked from) a Celery worker
    task_started = 0.0  # time.monotonic() when this pool process began its current task


@signals.worker_init.connect  # type: ignore[untyped-decorator]
def _mark_worker(**_: Any) -> None:
    ThisProcess.in_worker = True


@signals.task_prerun.connect  # type: ignore[untyped-decorator]
def _mark_task_start(**_: Any) -> None:
    ThisProcess.task_started = time.monotonic()


def in_main_process() -> bool:
    return bool(current_process().name == "MainProcess")


def _after_grace(waited: float) -> bool:
    return _stopping() and waited >= SHUTDOWN_GRACE_SECONDS


class PatientQoS(kombu_redis.QoS):
    """kombu's Redis QoS, waiting while Redis is out of memory instead of raising."""

    def append(self, message: Any, delivery_tag: str) -> None:
        def record() -> None:
            try:
                super(PatientQoS, self).append(message, delivery_tag)  # type: ignore[no-untyped-call]
            except redis.ResponseError as exc:
                if is_out_of_memory(exc):
                    self.channel.short_of_memory = True
                raise

        try:
            wait_for_memory(record, "record a delivered message", give_up=_after_grace)
        except redis.RedisError as exc:
            if not is_out_of_memory(exc):
                raise
            # Stopping, and Redis still has no room: the message is only in this process.
            logger.critical(
                "%s: a delivered message could not be recorded before shutdown; send it again: %s",
                OOM_MESSAGE,
                json.dumps(message._raw, default=str),
            )
            raise

    def ack(self, delivery_tag: str) -> None:
        # Not a MULTI (refused whole under maxmemory since Redis 7): HDEL and ZREM alone
        # free memory and are accepted. HDEL first: an index entry without its message is
        # dropped by the next restore, a message without its index entry would never be.
        def remove() -> None:
            with self.channel.conn_or_acquire() as client, client.pipeline(False) as pipe:
                pipe.hdel(self.unacked_key, delivery_tag)
                pipe.zrem(self.unacked_index_key, delivery_tag)
                pipe.execute()

        wait_for_memory(remove, "acknowledge a message", give_up=lambda waited: _stopping())
        virtual.QoS.ack(self, delivery_tag)  # type: ignore[no-untyped-call]

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        if requeue:
            self.restore_by_tag(delivery_tag, leftmost=True)
            virtual.QoS.ack(self, delivery_tag)  # type: ignore[no-untyped-call]
        else:
            self.ack(delivery_tag)

    def restore_by_tag(self, tag: str, client: Any = None, leftmost: bool = False) -> None:
        try:
            super().restore_by_tag(tag, client=client, leftmost=leftmost)  # type: ignore[no-untyped-call]
        except redis.RedisError as exc:
            if not is_out_of_memory(exc):
                raise
            # The transaction was refused whole: the message is still unacknowledged in
            # Redis, and the periodic restore puts it back once Redis has room.
            logger.warning("%s: message %s stays unacknowledged for a later restore",
                           OOM_MESSAGE, tag)  # fmt: skip

    def restore_visible(self, start: int = 0, num: int = 10, interval: int = 10) -> None:
        try:
            super().restore_visible(start=start, num=num, interval=interval)  # type: ignore[no-untyped-call]
        except redis.RedisError as exc:
            if not is_out_of_memory(exc):
                raise
            # Its lock (SET NX) was refused: the next round tries again.
            self.channel.short_of_memory = True
            logger.warning("%s: restoring timed-out messages is put off", OOM_MESSAGE)

    def forget(self, delivery_tag: str) -> None:
        """Stop tracking a message in this process; Redis keeps it unacknowledged."""
        virtual.QoS.ack(self, delivery_tag)  # type: ignore[no-untyped-call]


class PatientChannel(kombu_redis.Channel):
    """The channel half: its QoS waits, and it takes no message, while Redis is out of memory.

    BRPOP frees memory, so Redis serves it at maxmemory: a message taken then could not
    be recorded as unacknowledged, and would be only in this process until Redis has
    room. Before each BRPOP the channel asks for a write that Redis refuses at maxmemory
    but that changes nothing (SET NX of a key that exists): refused, it takes no message
    and asks again on the event loop's next turn.
    """

    QoS = PatientQoS
    short_of_memory = False
    probe_refused = False

    def _brpop_start(self, timeout: int | None = None) -> None:
        if not self._has_room():
            return  # the event loop calls again on its next turn
        super()._brpop_start(timeout)  # type: ignore[no-untyped-call]

    def _size(self, queue: str) -> int:
        # kombu reads the lengths in a MULTI, which Redis refuses whole at maxmemory: a
        # worker starting then exited, and a producer was refused at the read, not the write.
        with self.conn_or_acquire() as client, client.pipeline(False) as pipe:
            for priority in self.priority_steps:
                pipe.llen(self._q_for_pri(queue, priority))  # type: ignore[no-untyped-call]
            return sum(size for size in pipe.execute() if isinstance(size, int))

    def _queue_bind(self, exchange: str, routing_key: str, pattern: str, queue: str) -> None:
        def bind() -> None:
            super(PatientChannel, self)._queue_bind(exchange, routing_key, pattern, queue)  # type: ignore[no-untyped-call]

        if not ThisProcess.in_worker:
            return bind()  # a producer is refused at once (BACKEND_UNAVAILABLE)
        # A worker starting while Redis is full waits for room to declare its queues.
        return wait_for_memory(bind, "declare a queue", give_up=lambda waited: _stopping())

    def _has_room(self) -> bool:
        try:
            self.client.set(MEMORY_PROBE_KEY, b"1", nx=True)
        except redis.ResponseError as exc:
            if not is_out_of_memory(exc):
                # A Redis that refuses this write for another reason (an ACL without SET,
                # a read-only replica) still lets the worker pop messages, as before.
                if not self.probe_refused:
                    logger.warning("memory probe refused (%s): taking messages anyway", exc)
                self.probe_refused = True
                return True
                logger.warning("%s: taking no message until it has room", OOM_MESSAGE)
            self.short_of_memory = True
            return False
        if self.short_of_memory:
            self.short_of_memory = False
            logger.warning("Redis has room again: taking messages")
        return True
