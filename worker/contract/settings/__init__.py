"""zipscore's one settings object, read from the environment (and `.env` when present).

Every module asks `get_settings()`; nothing else reads `os.environ`. Variables are prefixed
`ZIPSCORE_` (e.g. `ZIPSCORE_DATABASE_URL`); every one is listed in docs/configuration.md.
The fields are grouped by what they configure, one module each (connections, tasks, index,
batch, gateway); this class joins them and checks the rules that cross groups.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import ValidationError, model_validator
from pydantic_settings import SettingsConfigDict

from worker.contract.settings.batch import BatchSettings
from worker.contract.settings.connections import ConnectionSettings
from worker.contract.settings.gateway import GatewaySettings
from worker.contract.settings.index import IndexSettings
from worker.contract.settings.tasks import TASK_RETRY_BACKOFF_MAX_SECONDS, TaskSettings


class Settings(ConnectionSettings, TaskSettings, IndexSettings, BatchSettings, GatewaySettings):
    """Typed, validated configuration; Celery's config is derived from it."""

    model_config = SettingsConfigDict(env_prefix="ZIPSCORE_", env_file=".env", extra="ignore")

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
