"""Settings of tasks: time limits, timeouts, retries' bounds and the visibility timeout."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

# The longest countdown of a lookup or batch task's retry (worker/task_guard.py RETRY).
TASK_RETRY_BACKOFF_MAX_SECONDS = 20


class TaskSettings(BaseSettings):
    """How long tasks and their messages may take, and how processes log them."""

    lookup_timeout: float = Field(default=10.0, gt=0, le=600)
    cache_ttl_seconds: int = Field(default=86_400, ge=1)
    task_soft_time_limit: int = Field(default=60, ge=1)
    task_time_limit: int = Field(default=90, ge=1)
    result_expires_seconds: int = Field(default=3_600, ge=60)
    worker_max_memory_per_child_kb: int = Field(default=200_000, ge=10_000)
    visibility_timeout_seconds: int = Field(default=3_600, ge=60)
    worker_soft_shutdown_seconds: float = Field(default=45.0, ge=0, le=3_600)
    # None: the longest retry countdown zipscore itself schedules (see `max_eta`).
    max_eta_seconds: int | None = Field(default=None, ge=1)
    # Messages one worker holds in memory waiting for their ETA (~8 KiB each): ~40 MiB.
    max_eta_messages: int = Field(default=5_000, ge=1, le=1_000_000)

    log_format: str = Field(default="text", pattern=r"^(text|json)$")

    @field_validator("task_time_limit")
    @classmethod
    def _hard_limit_above_soft(cls, value: int, info: object) -> int:
        soft = getattr(info, "data", {}).get("task_soft_time_limit", 0)
        if value <= soft:
            raise ValueError("must be greater than ZIPSCORE_TASK_SOFT_TIME_LIMIT")
        return value
