"""Once a worker is ready, a warning in its log for each way its Redis could lose work."""

from __future__ import annotations

import logging

import redis
from celery import signals

from worker.contract.redis_health import memory_problems

logger = logging.getLogger(__name__)


@signals.worker_ready.connect  # type: ignore[untyped-decorator]
def warn_when_ready(sender: object = None, **_: object) -> None:
    """Log each problem of the worker's broker once it is ready (no Redis: said elsewhere)."""
    from worker.contract.result_cache import redis_client
    from worker.contract.settings import get_settings

    try:
        problems = memory_problems(redis_client(get_settings().broker))
    except redis.RedisError:
        return
    for problem in problems:
        logger.warning("broker: %s", problem)
