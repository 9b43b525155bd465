"""The worker's message consumer: Celery's, with one line for each message it refuses.

A message that is not a task zipscore can decode (pickle or another foreign content type,
a broken body) is refused by Celery before any task runs. Celery logs the refusal with a
traceback and a dump of the body, but not the message's id; this consumer logs one line
with the id, the task name and the content type, then drops the message (it is never
delivered again). Loaded by the worker only (`worker_consumer` in worker/celery_app.py).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import signals
from celery.worker.consumer import Consumer

logger = logging.getLogger(__name__)


class RefusingConsumer(Consumer):  # type: ignore[misc]
    """Celery's consumer; invalid messages get one log line with their id, then are dropped."""

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        headers = message.headers or {}
        logger.error(
            "refused message id=%s task=%s content_type=%s: %s",
            headers.get("id", "-"),
            headers.get("task", "-"),
            message.content_type,
            str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__,
        )
        message.reject_log_error(logger, self.connection_errors)
        signals.task_rejected.send(sender=self, message=message, exc=exc)

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        # Celery's own logs CRITICAL with a traceback and a dump of the body (which may be
        # anything a client put in the queue): one line here, then the message is dropped.
        headers = message.headers or {}
        logger.error(
            "refused message id=%s task=%s content_type=%s: the body cannot be decoded (%s)",
            headers.get("id", "-"),
            headers.get("task", "-"),
            message.content_type,
            type(exc).__name__,
        )
        message.reject_log_error(logger, self.connection_errors)
        signals.task_rejected.send(sender=self, message=message, exc=exc)
