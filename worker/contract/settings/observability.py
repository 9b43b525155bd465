"""Settings of what zipscore tells operators: log level, Prometheus metrics, scrape keys."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode

from worker.contract.secret_files import check_api_key, read_api_keys


class ObservabilitySettings(BaseSettings):
    """Logs, metrics and who may read the metrics (traces take the standard OTEL_* variables)."""

    # Every process's level when set (the worker's --loglevel, the gateway's INFO, the CLI's
    # quiet default otherwise).
    log_level: str | None = Field(default=None, pattern=r"^(?i:debug|info|warning|error|critical)$")
    # Prometheus metrics (docs/operations.md, Monitoring): off, nothing is recorded or served.
    metrics: bool = False
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9540, ge=1, le=65_535)
    metrics_dir: Path = Path("var/metrics")
    # Keys that may read /metrics and nothing else (Prometheus's): comma-separated, or a file.
    metrics_keys: Annotated[tuple[str, ...], NoDecode] = Field(default=(), repr=False)
    metrics_keys_file: Path | None = None

    @field_validator("metrics_keys", mode="before")
    @classmethod
    def _comma_separated_metrics_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @model_validator(mode="after")
    def _metrics_keys_are_real(self) -> ObservabilitySettings:
        """Scrape keys from the variable or the file (never both), each long enough."""
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
        return self
