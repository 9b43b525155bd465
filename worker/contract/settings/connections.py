"""Settings of the connections: Postgres and Redis URLs, the key prefix, password files."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, PostgresDsn, PrivateAttr, RedisDsn, model_validator
from pydantic_settings import BaseSettings

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
    # Passwords from files (container secrets), set into the URLs above that have none.
    database_password_file: Path | None = None
    redis_password_file: Path | None = None
    _urls: dict[str, str] = PrivateAttr(default_factory=dict)

    db_pool_min_size: int = Field(default=1, ge=0, le=100)
    db_pool_max_size: int = Field(default=4, ge=1, le=100)
    db_connect_timeout: float = Field(default=5.0, gt=0, le=60)

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
