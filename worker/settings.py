"""zipscore's one settings object, read from the environment (and `.env` when present).

Every module asks `get_settings()`; nothing else reads `os.environ`. Variables are prefixed
`ZIPSCORE_` (e.g. `ZIPSCORE_DATABASE_URL`); see the README's configuration table.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import (
    AnyHttpUrl,
    Field,
    PostgresDsn,
    PrivateAttr,
    RedisDsn,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from worker.secret_files import (
    check_api_key,
    read_api_keys,
    read_secret,
    refuse_placeholder,
    url_password,
    with_password,
)

# beSTAT's public JSON view of the consumer price index family (English labels: "Base year",
# "Health index", "Month", "Year"), as used by other public consumers of Statbel's open data.
# Never fetched in tests; point ZIPSCORE_STATBEL_URL elsewhere to use another source.
STATBEL_URL = (
    "https://bestat.statbel.fgov.be/bestat/api/views/"
    "208b69bd-05c5-4947-b7f9-2d2300f517b8/result/JSON"
)
_CRON_FIELD = re.compile(r"^[0-9*/,\-]+$")
# The longest countdown of a lookup or batch task's retry (worker/tasks.py RETRY).
TASK_RETRY_BACKOFF_MAX_SECONDS = 20


class Settings(BaseSettings):
    """Typed, validated configuration; Celery's config is derived from it."""

    model_config = SettingsConfigDict(env_prefix="ZIPSCORE_", env_file=".env", extra="ignore")

    database_url: PostgresDsn = PostgresDsn("postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url: RedisDsn = RedisDsn("redis://127.0.0.1:6379/0")
    broker_url: RedisDsn | None = None
    result_backend_url: RedisDsn | None = None
    cache_url: RedisDsn | None = None
    redis_prefix: str = Field(default="zipscore", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    # Passwords from files (container secrets), set into the URLs above that have none.
    database_password_file: Path | None = None
    redis_password_file: Path | None = None
    _urls: dict[str, str] = PrivateAttr(default_factory=dict)

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
    worker_soft_shutdown_seconds: float = Field(default=45.0, ge=0, le=3_600)
    # None: the longest retry countdown zipscore itself schedules (see `max_eta`).
    max_eta_seconds: int | None = Field(default=None, ge=1)
    # Messages one worker holds in memory waiting for their ETA (~8 KiB each): ~40 MiB.
    max_eta_messages: int = Field(default=5_000, ge=1, le=1_000_000)

    log_format: str = Field(default="text", pattern=r"^(text|json)$")
    # Every process's level when set (the worker's --loglevel, the gateway's INFO, the CLI's
    # quiet default otherwise).
    log_level: str | None = Field(default=None, pattern=r"^(?i:debug|info|warning|error|critical)$")
    # Prometheus metrics (docs: README "Monitoring"): off, nothing is recorded or served.
    metrics: bool = False
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9540, ge=1, le=65_535)
    metrics_dir: Path = Path("var/metrics")
    # Keys that may read /metrics and nothing else (Prometheus's): comma-separated, or a file.
    metrics_keys: Annotated[tuple[str, ...], NoDecode] = Field(default=(), repr=False)
    metrics_keys_file: Path | None = None

    statbel_url: AnyHttpUrl = AnyHttpUrl(STATBEL_URL)
    statbel_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    statbel_max_bytes: int = Field(default=5_000_000, ge=1_000, le=100_000_000)
    index_base_years: Annotated[tuple[int, ...], NoDecode] = (1996, 2004, 2013, 2025)
    index_default_base_year: int = 2004
    index_stale_after_seconds: int = Field(default=3 * 86_400, ge=60)
    index_refresh_cron: str = "15 7 * * *"
    index_refresh_timeout: float = Field(default=60.0, gt=0, le=3_600)
    index_retry_max_retries: int = Field(default=6, ge=0, le=20)
    index_retry_backoff_seconds: int = Field(default=5, ge=1, le=3_600)
    index_retry_backoff_max_seconds: int = Field(default=300, ge=1)
    beat_schedule_dir: Path = Path("var")
    beat_lock_ttl_seconds: int = Field(default=60, ge=2, le=3_600)
    batch_chunk_size: int = Field(default=50_000, ge=1, le=1_000_000)
    batch_max_chunk_mb: int = Field(default=32, ge=1, le=512)
    batch_in_flight: int = Field(default=6, ge=1, le=256)
    batch_chunk_deadline_seconds: float = Field(default=120.0, gt=0, le=86_400)
    batch_max_attempts: int = Field(default=5, ge=1, le=100)
    batch_ttl_seconds: int = Field(default=7 * 86_400, ge=60)
    batch_lease_seconds: float = Field(default=15.0, gt=0, le=3_600)
    batch_poll_seconds: float = Field(default=0.05, gt=0, le=10)
    table_max_mb: int = Field(default=64, ge=1, le=4096)
    gateway_upload_dir: Path = Path("var/uploads")
    gateway_max_upload_mb: int = Field(default=100, ge=1, le=100_000)
    gateway_threads: int = Field(default=32, ge=1, le=1_000)
    gateway_max_waiting: int = Field(default=32, ge=0, le=10_000)
    gateway_max_batches: int = Field(default=2, ge=1, le=64)
    gateway_ready_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    # API keys: comma-separated here, or one a line in the file (a container secret).
    gateway_api_keys: Annotated[tuple[str, ...], NoDecode] = Field(default=(), repr=False)
    gateway_api_keys_file: Path | None = None
    gateway_batches_per_minute: int = Field(default=10, ge=1, le=10_000)

    @field_validator("task_time_limit")
    @classmethod
    def _hard_limit_above_soft(cls, value: int, info: object) -> int:
        soft = getattr(info, "data", {}).get("task_soft_time_limit", 0)
        if value <= soft:
            raise ValueError("must be greater than ZIPSCORE_TASK_SOFT_TIME_LIMIT")
        return value

    @field_validator("index_base_years", mode="before")
    @classmethod
    def _comma_separated_years(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("index_base_years")
    @classmethod
    def _plausible_years(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(not 1900 <= year <= 2200 for year in value):
            raise ValueError("must be a comma-separated list of years such as 1996,2004,2013")
        return tuple(sorted(set(value)))

    @field_validator("gateway_api_keys", mode="before")
    @classmethod
    def _comma_separated_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @model_validator(mode="after")
    def _api_keys_are_real(self) -> Settings:
        """Keys from the variable or the file (never both), each long enough; no message
        quotes a key."""
        if self.gateway_api_keys and self.gateway_api_keys_file is not None:
            raise ValueError(
                "ZIPSCORE_GATEWAY_API_KEYS and ZIPSCORE_GATEWAY_API_KEYS_FILE are both set:"
                " keep the keys in one place"
            )
        for number, key in enumerate(self.gateway_api_keys, 1):
            try:
                check_api_key(key)
            except ValueError as exc:
                raise ValueError(f"ZIPSCORE_GATEWAY_API_KEYS: key {number} {exc}") from None
        if self.gateway_api_keys_file is not None:
            try:
                self.gateway_api_keys = read_api_keys(self.gateway_api_keys_file)
            except ValueError as exc:
                raise ValueError(f"ZIPSCORE_GATEWAY_API_KEYS_FILE: {exc}") from None
        return self

    @field_validator("metrics_keys", mode="before")
    @classmethod
    def _comma_separated_metrics_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @model_validator(mode="after")
    def _metrics_behind_keys(self) -> Settings:
        """Scrape keys from the variable or the file; a worker's metrics listener beyond
        loopback needs keys (as a bearer)."""
        from worker.telemetry.listener import is_loopback_host

        if self.metrics_keys and self.metrics_keys_file is not None:
            raise ValueError(
                "ZIPSCORE_METRICS_KEYS and ZIPSCORE_METRICS_KEYS_FILE are both set:"
                " keep the keys in one place"
            )
        for number, key in enumerate(self.metrics_keys, 1):
            try:
                check_api_key(key)
            except ValueError as exc:
                raise ValueError(f"ZIPSCORE_METRICS_KEYS: key {number} {exc}") from None
        if self.metrics_keys_file is not None:
            try:
                self.metrics_keys = read_api_keys(self.metrics_keys_file)
            except ValueError as exc:
                raise ValueError(f"ZIPSCORE_METRICS_KEYS_FILE: {exc}") from None
        if self.metrics and not self.scrape_keys and not is_loopback_host(self.metrics_host):
            raise ValueError(
                "ZIPSCORE_METRICS_HOST is beyond loopback: set ZIPSCORE_METRICS_KEYS_FILE"
                " (or ZIPSCORE_METRICS_KEYS) so the metrics listener asks for a key, or keep"
                " it on 127.0.0.1"
            )
        return self

    @property
    def scrape_keys(self) -> tuple[str, ...]:
        """The keys a scrape of /metrics may present: the metrics keys when there are any,
        else the gateway's API keys."""
        return self.metrics_keys or self.gateway_api_keys

    @field_validator("index_refresh_cron")
    @classmethod
    def _five_cron_fields(cls, value: str) -> str:
        fields = value.split()
        if len(fields) != 5 or not all(_CRON_FIELD.match(field) for field in fields):
            raise ValueError("must be five cron fields: minute hour day month weekday")
        from celery.schedules import crontab

        try:
            crontab(
                *fields[:2], day_of_month=fields[2], month_of_year=fields[3], day_of_week=fields[4]
            )
        except ValueError:
            raise ValueError("is not a valid cron schedule") from None
        return " ".join(fields)

    @model_validator(mode="after")
    def _index_choices_fit(self) -> Settings:
        if self.index_default_base_year not in self.index_base_years:
            raise ValueError("ZIPSCORE_INDEX_DEFAULT_BASE_YEAR must be one of the base years")
        if self.max_eta_seconds is not None and self.max_eta_seconds < self.retry_countdown:
            raise ValueError(
                f"ZIPSCORE_MAX_ETA_SECONDS must be at least the longest retry countdown "
                f"({self.retry_countdown} s), or zipscore's own retries are refused"
            )
        # Redis hands a message to another worker once it has been unacknowledged for the
        # visibility timeout. A message is held unacknowledged while it runs (at most the hard
        # time limit) or while it waits for its ETA (a retry's countdown): keep both, twice
        # over, under it, or a slow task or a retried one would run twice.
        if self.longest_unacknowledged_seconds * 2 > self.visibility_timeout_seconds:
            raise ValueError(
                "ZIPSCORE_TASK_TIME_LIMIT plus the longest retry countdown "
                f"({self.longest_unacknowledged_seconds} s in all, with "
                "ZIPSCORE_INDEX_RETRY_BACKOFF_MAX_SECONDS or ZIPSCORE_MAX_ETA_SECONDS) must "
                "stay under half of ZIPSCORE_VISIBILITY_TIMEOUT_SECONDS, or a task can be "
                "delivered twice"
            )
        return self

    @model_validator(mode="after")
    def _passwords_are_real(self) -> Settings:
        self._urls = {
            "database": str(self.database_url),
            "broker": str(self.broker_url or self.redis_url),
            "result_backend": str(self.result_backend_url or self.redis_url),
            "cache": str(self.cache_url or self.redis_url),
        }
        for role, url in self._urls.items():
            password = url_password(url)
            try:
                refuse_placeholder(password or "")
            except ValueError as exc:
                raise ValueError(f"the password of the {role} URL {exc}") from None
        files = {"database": self.database_password_file, "redis": self.redis_password_file}
        for kind, path in files.items():
            if path is None:
                continue
            try:
                secret = read_secret(path)
                if kind == "redis" and ('"' in secret or "\\" in secret):
                    # Compose hands the same file to Redis as `requirepass "<it>"`, where a
                    # quote or a backslash would change the password Redis expects.
                    raise ValueError("must hold no double quote or backslash (openssl rand -hex)")
                for role, url in self._urls.items():
                    if (role == "database") == (kind == "database"):
                        self._urls[role] = with_password(url, secret)
            except ValueError as exc:
                raise ValueError(f"ZIPSCORE_{kind.upper()}_PASSWORD_FILE: {exc}") from None
        return self

    @property
    def retry_countdown(self) -> int:
        """The longest countdown of a zipscore task's retry: lookups and batch, or the index."""
        return max(TASK_RETRY_BACKOFF_MAX_SECONDS, self.index_retry_backoff_max_seconds)

    @property
    def max_eta(self) -> int:
        """How far ahead a message's ETA may be: farther, the worker refuses the message.

        zipscore's own messages carry an ETA only when Celery retries a task, at most the
        longest retry countdown ahead; a worker holds such a message in memory, unacknowledged,
        until its ETA, so the bound also caps how long a message is held.
        """
        return self.max_eta_seconds or self.retry_countdown

    @property
    def longest_unacknowledged_seconds(self) -> int:
        """The longest a worker holds one message unacknowledged: a run after its ETA wait."""
        return self.task_time_limit + self.max_eta

    @property
    def index_refresh_crontab(self) -> tuple[str, str, str, str, str]:
        """The refresh schedule's cron fields: minute, hour, day of month, month, weekday."""
        minute, hour, day, month, weekday = self.index_refresh_cron.split()
        return minute, hour, day, month, weekday

    @property
    def broker(self) -> str:
        return self._urls["broker"]

    @property
    def result_backend(self) -> str:
        return self._urls["result_backend"]

    @property
    def cache(self) -> str:
        return self._urls["cache"]

    @property
    def database(self) -> str:
        return self._urls["database"]


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
            if err["loc"]
            else str(err["msg"]).removeprefix("Value error, ")
            for err in exc.errors()
        )
        raise SettingsError(f"invalid configuration: {problems}") from None
