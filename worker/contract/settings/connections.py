"""Settings of the connections: Postgres and Redis URLs, the key prefix, password files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, PostgresDsn, PrivateAttr, RedisDsn, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode

from worker.contract.secret_files import (
    read_secret,
    refuse_placeholder,
    url_password,
    with_password,
)


class ConnectionSettings(BaseSettings):
    """Where Postgres and Redis are, and with which passwords."""

    database_url: PostgresDsn = PostgresDsn("postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url: RedisDsn = RedisDsn("redis://127.0.0.1:6379/0")
    broker_url: RedisDsn | None = None
    result_backend_url: RedisDsn | None = None
    cache_url: RedisDsn | None = None
    redis_prefix: str = Field(default="zipscore", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    # Redis behind Sentinel (worker/contract/sentinel.py): the Sentinels' host:port list and
    # the group's name; the Redis URLs then give only the password and database number.
    sentinels: Annotated[tuple[str, ...], NoDecode] = ()
    sentinel_master: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    # Passwords from files (container secrets), set into the URLs above that have none.
    database_password_file: Path | None = None
    redis_password_file: Path | None = None
    _urls: dict[str, str] = PrivateAttr(default_factory=dict)

    db_pool_min_size: int = Field(default=1, ge=0, le=100)
    db_pool_max_size: int = Field(default=4, ge=1, le=100)
    db_connect_timeout: float = Field(default=5.0, gt=0, le=60)

    @field_validator("sentinels", mode="before")
    @classmethod
    def _comma_separated_sentinels(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("sentinels")
    @classmethod
    def _host_and_port(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for address in value:
            host, _, port = address.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{address!r} is not host:port (e.g. 10.0.0.5:26379)")
        return value

    @model_validator(mode="after")
    def _sentinels_name_their_group(self) -> ConnectionSettings:
        if bool(self.sentinels) != bool(self.sentinel_master):
            raise ValueError(
                "ZIPSCORE_SENTINELS and ZIPSCORE_SENTINEL_MASTER go together: set both or neither"
            )
        return self

    @property
    def sentinel_addresses(self) -> tuple[tuple[str, int], ...]:
        """The Sentinels as (host, port) pairs; empty when Redis is not behind Sentinel."""
        pairs = (address.rpartition(":") for address in self.sentinels)
        return tuple((host.strip("[]"), int(port)) for host, _, port in pairs)

    @model_validator(mode="after")
    def _passwords_are_real(self) -> ConnectionSettings:
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
