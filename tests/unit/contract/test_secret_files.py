"""Passwords and the gateway's API keys from files (container secrets), and the example
placeholders refused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg.conninfo
import pytest
import redis.connection
from pydantic import PostgresDsn, RedisDsn

from tests.support.settings import make_settings
from worker.contract.secret_files import read_secret, with_password
from worker.contract.settings import Settings, SettingsError, get_settings


def settings_of(**values: Any) -> Settings:
    """Settings from these values alone (no .env file)."""
    return make_settings(**values)


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


# -- the gateway's API keys ---------------------------------------------------------------

KEY = "k3y-0123456789abcdef-one"
OTHER_KEY = "k3y-fedcba9876543210-two"


def test_keys_come_from_the_variable_or_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZIPSCORE_GATEWAY_API_KEYS", f" {KEY} ,{OTHER_KEY},")
    from_variable = make_settings()
    assert from_variable.gateway_api_keys == (KEY, OTHER_KEY)
    monkeypatch.delenv("ZIPSCORE_GATEWAY_API_KEYS")
    assert KEY not in repr(from_variable)
    key_file = tmp_path / "gateway_api_keys"
    key_file.write_text(f"# rotated 2026-11\n{KEY}\n\n{OTHER_KEY}\r\n")
    from_file = make_settings(gateway_api_keys_file=key_file)
    assert from_file.gateway_api_keys == (KEY, OTHER_KEY)


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"gateway_api_keys": "short-key"}, "key 1 is shorter than 16 characters"),
        ({"gateway_api_keys": f"{KEY},{KEY[:8]} {KEY[8:]}"}, "key 2 holds a blank"),
        ({"gateway_api_keys_file": "missing"}, "cannot read the secret file"),
        ({"gateway_api_keys_file": "empty"}, "the key file holds no key"),
        ({"gateway_api_keys_file": "short"}, "key 2 is shorter than 16 characters"),
        ({"gateway_api_keys": KEY, "gateway_api_keys_file": "good"}, "keep the keys in one"),
    ],
)
def test_bad_keys_are_refused_without_quoting_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, values: dict[str, str], problem: str
) -> None:
    files = {"empty": "# none yet\n\n", "short": f"{KEY}\nabc123\n", "good": f"{KEY}\n"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    for name, value in values.items():
        if name.endswith("_file"):
            value = str(tmp_path / value)
        monkeypatch.setenv(f"ZIPSCORE_{name.upper()}", value)
    get_settings.cache_clear()
    try:
        with pytest.raises(SettingsError) as refused:
            get_settings()
    finally:
        get_settings.cache_clear()
    assert problem in str(refused.value)
    assert KEY not in str(refused.value)
    assert KEY[:8] not in str(refused.value)
    assert "abc123" not in str(refused.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://user%40corp@db/z", "postgresql://user%40corp:p%40ss@db/z"),
        ("postgresql://u@h1:5432,h2:5432/z", "postgresql://u:p%40ss@h1:5432,h2:5432/z"),
    ],
)
def test_the_rest_of_the_url_is_kept_as_written(url: str, expected: str) -> None:
    assert with_password(url, "p@ss") == expected


@pytest.mark.parametrize("password", ['pa"ss', "pa\\ss"])
def test_a_redis_password_that_redis_would_read_differently_is_refused(
    tmp_path: Path, password: str
) -> None:
    with pytest.raises(ValueError, match="no double quote or backslash"):
        settings_of(redis_password_file=secret(tmp_path, password + "\n"))
