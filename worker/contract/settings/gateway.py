"""Settings of the HTTP gateway: uploads, threads, waiting questions and API keys."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode

from worker.contract.secret_files import check_api_key, read_api_keys


class GatewaySettings(BaseSettings):
    """The gateway's bounds and who may ask it."""

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

    @field_validator("gateway_api_keys", mode="before")
    @classmethod
    def _comma_separated_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @model_validator(mode="after")
    def _api_keys_are_real(self) -> GatewaySettings:
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
