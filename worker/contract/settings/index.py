"""Settings of the health index: the Statbel source, base years, the refresh schedule."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import AnyHttpUrl, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode

# beSTAT's public JSON view of the consumer price index family (English labels: "Base year",
# "Health index", "Month", "Year"), as used by other public consumers of Statbel's open data.
# Never fetched in tests; point ZIPSCORE_STATBEL_URL elsewhere to use another source.
STATBEL_URL = (
    "https://bestat.statbel.fgov.be/bestat/api/views/"
    "208b69bd-05c5-4947-b7f9-2d2300f517b8/result/JSON"
)
_CRON_FIELD = re.compile(r"^[0-9*/,\-]+$")


class IndexSettings(BaseSettings):
    """Where the health index comes from, which base years, and when beat refreshes it."""

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

    @property
    def index_refresh_crontab(self) -> tuple[str, str, str, str, str]:
        """The refresh schedule's cron fields: minute, hour, day of month, month, weekday."""
        minute, hour, day, month, weekday = self.index_refresh_cron.split()
        return minute, hour, day, month, weekday
