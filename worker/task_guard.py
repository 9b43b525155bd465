"""What every zipscore task shares: the guard that refuses misshapen messages, and retries.

Each task answers with the contract's JSON: the answer itself, or `{"error": {"code",
"message"}}` when the input is refused; infrastructure faults are retried with backoff and
jitter. Every task runs through `GuardedTask`: a message whose arguments do not fit the
task's signature, or that is larger than `MAX_MESSAGE_BYTES`, is refused with the task's
contract error, logged once with its id, acknowledged and never retried (a poison message).
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
from collections.abc import Callable
from typing import Any

import redis

from worker.celery_app import app
from worker.contract.errors import ErrorCode, ZipscoreError
from worker.contract.settings.tasks import TASK_RETRY_BACKOFF_MAX_SECONDS
from worker.lookups import zipcodes

logger = logging.getLogger(__name__)
# Every zipscore message is a few ids or values (a chunk's rows wait in Redis, not in the
# message): 16 KiB is generous, and anything larger is refused before it is used.
MAX_MESSAGE_BYTES = 16_384

TRANSIENT = (*zipcodes.UNREACHABLE, redis.ConnectionError, redis.TimeoutError)
RETRY = {
    "autoretry_for": TRANSIENT,
    "retry_backoff": 1,
    "retry_backoff_max": TASK_RETRY_BACKOFF_MAX_SECONDS,
    "retry_jitter": True,
    "max_retries": 5,
}


def answer(compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run `compute`, turning a refused input into the contract's error envelope."""
    try:
        return compute()
    except ZipscoreError as exc:
        return exc.to_json()


@functools.cache
def _signature(run: Callable[..., Any]) -> inspect.Signature:
    return inspect.signature(run)


def refusal(
    run: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], limit: int
) -> str | None:
    """Why a message's arguments cannot be handed to `run`, or None when they can."""
    size = len(json.dumps([args, kwargs], default=repr))
    if size > limit:
        return f"message of {size} bytes is over the {limit}-byte limit"
    try:
        _signature(run).bind(*args, **kwargs)
    except TypeError as exc:
        return f"arguments do not fit the task ({exc})"
    return None


class GuardedTask(app.Task):  # type: ignore[misc]
    """A task that refuses messages of the wrong shape or size with a contract error."""

    refused_code: ErrorCode = ErrorCode.BACKEND_UNAVAILABLE
    max_message_bytes: int = MAX_MESSAGE_BYTES

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        problem = refusal(self.run, args, kwargs, self.max_message_bytes)
        if problem is None:
            return super().__call__(*args, **kwargs)
        logger.warning("refused %s task_id=%s: %s", self.name, self.request.id, problem)
        return ZipscoreError(self.refused_code, f"{self.name}: {problem}").to_json()


def guarded(code: ErrorCode) -> dict[str, Any]:
    """Task options: the guard's base class and the code of a refused message."""
    return {"base": GuardedTask, "refused_code": code}
