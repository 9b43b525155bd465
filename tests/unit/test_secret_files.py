"""Passwords from files (container secrets), and the example placeholders refused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg.conninfo
import pytest
import redis.connection
from pydantic import PostgresDsn, RedisDsn

from worker.secret_files import read_secret, with_password
from worker.settings import Settings


def settings_of(**values: Any) -> Settings:
    """Settings from these values alone (no .env file)."""
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def secret(tmp_path: Path, text: str, name: str = "secret") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_password_file_is_set_into_every_url_of_its_kind(tmp_path: Path) -> None:
    # Given a password with characters that must be escaped in a URL
    database = secret(tmp_path, "pg:p@ss/word\n", "pg")
    redis_file = secret(tmp_path, "r#dis pw\n", "redis")
    # When the settings read both files
    settings = settings_of(
        database_url=PostgresDsn("postgresql://zipscore@db:5432/zipscore"),
        redis_url=RedisDsn("redis://redis:6379/0"),
        cache_url=RedisDsn("redis://cache:6380/1"),
        database_password_file=database,
        redis_password_file=redis_file,
    )
    # Then each client library reads back the exact password, and the host is kept
    params = psycopg.conninfo.conninfo_to_dict(settings.database)
    assert (params["password"], params["host"], params["user"]) == (
        "pg:p@ss/word",
        "db",
        "zipscore",
    )
    for url in (settings.broker, settings.result_backend, settings.cache):
        assert redis.connection.parse_url(url)["password"] == "r#dis pw"
    assert redis.connection.parse_url(settings.cache)["host"] == "cache"


def test_without_files_the_urls_are_unchanged() -> None:
    settings = settings_of(redis_url=RedisDsn("redis://:real-pw@r:6379/2"))
    assert settings.broker == settings.cache == "redis://:real-pw@r:6379/2"


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"ZIPSCORE_REDIS_URL": "redis://:change-me@redis:6379/0"}, "example placeholder"),
        ({"ZIPSCORE_DATABASE_URL": "postgresql://z:change-me@db/z"}, "example placeholder"),
        ({"ZIPSCORE_DATABASE_PASSWORD_FILE": "/nonexistent/pw"}, "cannot read the secret file"),
    ],
)
def test_placeholders_and_unreadable_files_are_refused(
    settings_error: Callable[[dict[str, str]], str], variables: dict[str, str], expected: str
) -> None:
    message = settings_error(variables)
    assert expected in message
    assert "change-me" not in message


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("change-me\n", "example placeholder"),
        ("", "one non-empty line"),
        ("two\nlines\n", "one non-empty line"),
        ("x" * 5000, "over 4096 bytes"),
    ],
)
def test_a_bad_secret_file_is_refused_with_the_reason(
    tmp_path: Path, content: str, reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        read_secret(secret(tmp_path, content))


def test_a_password_in_the_url_and_in_a_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="in one place"):
        with_password("redis://:other@r:6379/0", "pw")
    with pytest.raises(ValueError, match="ZIPSCORE_REDIS_PASSWORD_FILE"):
        settings_of(
            redis_url=RedisDsn("redis://:other@r:6379/0"),
            redis_password_file=secret(tmp_path, "pw\n"),
        )


def test_an_ipv6_host_keeps_its_brackets() -> None:
    url = with_password("redis://[::1]:6379/0", "pw")
    assert redis.connection.parse_url(url)["host"] == "::1"
