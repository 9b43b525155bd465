"""zipscore's one settings object, read from the environment (and `.env` when present).

Every module asks `get_settings()`; nothing else reads `os.environ`. Variables are prefixed
`ZIPSCORE_` (e.g. `ZIPSCORE_DATABASE_URL`); see the README's configuration table.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, PostgresDsn, RedisDsn, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Typed, validated configuration; Celery's config is derived from it."""

    model_config = SettingsConfigDict(env_prefix="ZIPSCORE_", env_file=".env", extra="ignore")

    database_url: PostgresDsn = PostgresDsn("postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url: RedisDsn = RedisDsn("redis://127.0.0.1:6379/0")
    broker_url: RedisDsn | None = None
    result_backend_url: RedisDsn | None = None
    cache_url: RedisDsn | None = None
    redis_prefix: str = Field(default="zipscore", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")

    db_pool_min_size: int = Field(default=1, ge=0, le=100)
    db_pool_max_size: int = Field(default=4, ge=1, le=100)
    db_connect_timeout: float = Field(default=5.0, gt=0, le=60)

    lookup_timeout: float = Field(default=10.0, gt=0, le=600)
    cache_ttl_seconds: int = Field(default=86_400, ge=1)
    task_soft_time_limit: int = Field(default=60, ge=1)
    task_time_limit: int = Field(default=90, ge=1)
    result_expires_seconds: int = Field(default=3_600, ge=60)
    worker_max_memory_per_child_kb: int = Field(default=200_000, ge=10_000)
    visibility_timeout_seconds: int = Field(default=3_600, ge=60)

    log_format: str = Field(default="text", pattern=r"^(text|json)$")

    batch_chunk_size: int = Field(default=50_000, ge=1, le=1_000_000)
    batch_max_chunk_mb: int = Field(default=32, ge=1, le=512)
    batch_in_flight: int = Field(default=6, ge=1, le=256)
    batch_chunk_deadline_seconds: float = Field(default=120.0, gt=0, le=86_400)
    batch_max_attempts: int = Field(default=5, ge=1, le=100)
    batch_ttl_seconds: int = Field(default=7 * 86_400, ge=60)
    batch_lease_seconds: float = Field(default=15.0, gt=0, le=3_600)
    batch_poll_seconds: float = Field(default=0.05, gt=0, le=10)

    @field_validator("task_time_limit")
    @classmethod
    def _hard_limit_above_soft(cls, value: int, info: object) -> int:
        soft = getattr(info, "data", {}).get("task_soft_time_limit", 0)
        if value <= soft:
            raise ValueError("must be greater than ZIPSCORE_TASK_SOFT_TIME_LIMIT")
        return value

    @property
    def broker(self) -> str:
        return str(self.broker_url or self.redis_url)

    @property
    def result_backend(self) -> str:
        return str(self.result_backend_url or self.redis_url)

    @property
    def cache(self) -> str:
        return str(self.cache_url or self.redis_url)

    @property
    def database(self) -> str:
        return str(self.database_url)


class SettingsError(RuntimeError):
    """The environment holds a setting that cannot be used; the message names it."""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, validated once; raises SettingsError with a readable message."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"ZIPSCORE_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise SettingsError(f"invalid configuration: {problems}") from None
