"""Settings of the health index and beat, and base year validation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.settings import make_settings
from worker.contract.errors import ErrorCode, ZipscoreError
from worker.contract.settings import Settings
from worker.contract.settings.index import STATBEL_URL
from worker.contract.validation import parse_base_year

SUPPORTED = (1996, 2004, 2013, 2025)


def fresh(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(f"ZIPSCORE_{name.upper()}", value)
    return make_settings()


def test_index_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = fresh(monkeypatch)
    assert str(settings.statbel_url) == STATBEL_URL
    assert STATBEL_URL.startswith("https://bestat.statbel.fgov.be/bestat/api/views/")
    assert settings.index_base_years == SUPPORTED
    assert settings.index_default_base_year == 2004
    assert settings.index_stale_after_seconds == 3 * 86_400
    assert settings.index_refresh_crontab == ("15", "7", "*", "*", "*")
    assert settings.beat_schedule_dir == Path("var")


def test_base_years_are_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = fresh(monkeypatch, index_base_years=" 2013, 2004 ,2004")
    assert settings.index_base_years == (2004, 2013)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ZIPSCORE_INDEX_BASE_YEARS", "2004,abc"),
        ("ZIPSCORE_INDEX_BASE_YEARS", "1200"),
        ("ZIPSCORE_INDEX_REFRESH_CRON", "every day"),
        ("ZIPSCORE_INDEX_REFRESH_CRON", "61 7 * * *"),
        ("ZIPSCORE_STATBEL_URL", "ftp://statbel"),
        ("ZIPSCORE_INDEX_STALE_AFTER_SECONDS", "5"),
        ("ZIPSCORE_STATBEL_MAX_BYTES", "-1"),
    ],
)
def test_bad_index_settings_name_the_variable(
    settings_error: Callable[[dict[str, str]], str], name: str, value: str
) -> None:
    assert name in settings_error({name: value})


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"ZIPSCORE_INDEX_DEFAULT_BASE_YEAR": "1988"}, "DEFAULT_BASE_YEAR"),
        ({"ZIPSCORE_INDEX_RETRY_BACKOFF_MAX_SECONDS": "3000"}, "VISIBILITY_TIMEOUT"),
    ],
)
def test_inconsistent_index_settings_are_refused_at_start(
    settings_error: Callable[[dict[str, str]], str], env: dict[str, str], says: str
) -> None:
    message = settings_error(env)
    assert says in message
    assert "ZIPSCORE_:" not in message


@pytest.mark.parametrize(("value", "year"), [(2004, 2004), ("2013", 2013), (" 1996 ", 1996)])
def test_supported_base_years(value: object, year: int) -> None:
    assert parse_base_year(value, SUPPORTED) == year


@pytest.mark.parametrize(
    "value", [2005, "1988", "2004 = 100", "20040", True, None, 2004.0, "", "２００４", [2004]]
)
def test_other_base_years_are_wrong_year(value: object) -> None:
    with pytest.raises(ZipscoreError) as caught:
        parse_base_year(value, SUPPORTED)
    assert caught.value.code is ErrorCode.WRONG_YEAR
    assert "1996, 2004, 2013, 2025" in caught.value.message


@pytest.mark.parametrize(
    ("env", "refused"),
    [
        ({"ZIPSCORE_VISIBILITY_TIMEOUT_SECONDS": "60"}, True),  # 2 x (90 + 20) > 60
        ({"ZIPSCORE_VISIBILITY_TIMEOUT_SECONDS": "219"}, True),  # one second short
        ({"ZIPSCORE_VISIBILITY_TIMEOUT_SECONDS": "220"}, False),
        (
            {
                "ZIPSCORE_VISIBILITY_TIMEOUT_SECONDS": "60",
                "ZIPSCORE_TASK_SOFT_TIME_LIMIT": "5",
                "ZIPSCORE_TASK_TIME_LIMIT": "10",
            },
            False,  # 2 x (10 + 20) = 60
        ),
        (
            {
                "ZIPSCORE_VISIBILITY_TIMEOUT_SECONDS": "600",
                "ZIPSCORE_TASK_SOFT_TIME_LIMIT": "250",
                "ZIPSCORE_TASK_TIME_LIMIT": "300",
            },
            True,  # a run longer than half the visibility timeout
        ),
    ],
)
def test_a_visibility_timeout_that_could_redeliver_a_running_task_is_refused(
    monkeypatch: pytest.MonkeyPatch,
    settings_error: Callable[[dict[str, str]], str],
    env: dict[str, str],
    refused: bool,
) -> None:
    """Time limit + longest retry countdown, twice over, must fit the visibility timeout."""
    env = {"ZIPSCORE_INDEX_RETRY_BACKOFF_MAX_SECONDS": "1", **env}
    if refused:
        assert "delivered twice" in settings_error(env)
        return
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = make_settings()
    assert settings.longest_unacknowledged_seconds * 2 <= settings.visibility_timeout_seconds


def test_the_defaults_hold_a_message_far_below_the_visibility_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ZIPSCORE_INDEX_RETRY_BACKOFF_MAX_SECONDS")  # the run's fast policy
    defaults = make_settings()
    # 90 s hard limit + 300 s index countdown = 390 s, against a one-hour visibility timeout.
    assert defaults.longest_unacknowledged_seconds == 390
    assert defaults.visibility_timeout_seconds == 3_600
