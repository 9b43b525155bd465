"""Task outcomes stored once Redis has room, or kept for redelivery: never lost to a full Redis.

Storing a task's result (pool process): it waits, retrying with backoff, until half the
task's soft time limit has passed since the task began. A task whose result still could not
be stored is then not acknowledged: its message stays in the unacknowledged set and is
delivered again after the visibility timeout (`PatientRequest`). Installed by
worker/celery_app.py (the result backend and the tasks' Request class); the waiting itself
is worker/broker/memory.py's.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from celery import Task, states
from celery.app import backends as celery_backends
from celery.backends.redis import RedisBackend
from celery.worker import state as worker_state
from celery.worker.request import Request

from worker.broker.memory import (
    OOM_MESSAGE,
    PatientChannel,
    ThisProcess,
    in_main_process,
    wait_for_memory,
)
from worker.contract.redis_errors import is_out_of_memory
from worker.contract.settings import get_settings

logger = logging.getLogger(__name__)
# How far into its soft time limit a task's pool process waits to store its result.
RESULT_WAIT_SHARE = 0.5


class PatientBackend(RedisBackend):  # type: ignore[misc]
    """Celery's Redis result backend, storing a result once Redis has room for it."""

    def _set_with_state(self, key: str, value: str, state: str) -> None:
        def store() -> None:
            super(PatientBackend, self)._set_with_state(key, value, state)

        if state == states.FAILURE and "maxmemory" in value:
            # The failure to record is this very lack of room: no use waiting for it (the
            # task's message is kept for redelivery instead, see PatientRequest).
            return store()
        if in_main_process():
            # The worker's event loop (a task's failure, its time limit): it must not stop
            # for Redis, PatientRequest keeps the message for redelivery instead.
            return store()
        # A pool process gives up by its own clock, half-way to the task's soft time limit:
        # that signal comes from the worker's event loop, which may be waiting for room
        # itself, and, landing while this process writes its outcome to the worker (a warm
        # shutdown), it leaves half a message in the pipe that the worker waits on for good.
        limit = ThisProcess.task_started + get_settings().task_soft_time_limit * RESULT_WAIT_SHARE
        return wait_for_memory(
            store, "store a task's result", give_up=lambda waited: time.monotonic() >= limit
        )


class PatientRequest(Request):  # type: ignore[misc]
    """A task request whose message is not acknowledged when its outcome could not be stored.

    The outcome of a task (its result, or a failure the worker records for it) could not
    be written for lack of room in Redis: acknowledging would lose the answer. Its message
    stays in the unacknowledged set, delivered again after the visibility timeout (tasks
    are idempotent), and this channel takes no new message until Redis has room.
    """

    def on_failure(
        self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False
    ) -> Any:
        if is_out_of_memory(exc_info.exception):  # unwraps billiard's ExceptionWithTraceback
            return self._keep_for_redelivery()
        try:
            return super().on_failure(exc_info, send_failed_event, return_ok)
        except redis.RedisError as err:
            if not is_out_of_memory(err):
                raise
            return self._keep_for_redelivery()

    def on_timeout(self, soft: bool, timeout: float) -> Any:
        try:
            return super().on_timeout(soft, timeout)
        except redis.RedisError as err:
            if not is_out_of_memory(err):
                raise
            return self._keep_for_redelivery()

    def _keep_for_redelivery(self) -> None:
        worker_state.task_ready(self)
        channel = self.message.channel
        if not isinstance(channel, PatientChannel):
            return
        channel.short_of_memory = True  # take no message before Redis has room
        if self.message.delivery_tag in channel.qos._delivered:
            logger.warning(
                "%s: the outcome of %s[%s] could not be stored; its message stays "
                "unacknowledged and is delivered again after the visibility timeout",
                OOM_MESSAGE,
                self.task_name,
                self.id,
            )
            channel.qos.forget(self.message.delivery_tag)


class PatientTask(Task):  # type: ignore[misc]
    """The base of every zipscore task: its requests are `PatientRequest`s."""

    Request = f"{__name__}:PatientRequest"


def use() -> None:
    """Make `PatientBackend` the result backend of redis:// and rediss:// URLs."""
    for scheme in ("redis", "rediss"):
        celery_backends.BACKEND_ALIASES[scheme] = f"{__name__}:PatientBackend"
