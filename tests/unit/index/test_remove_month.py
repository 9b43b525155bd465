"""`zipscore index remove-month`: an operator deletes a wrong month, and the latest month
is recomputed at once (memory store, fakeredis cache, the CLI through CliRunner)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from click.testing import CliRunner

from producer.cli import main as cli
from tests.support.fakes import MemoryHealthIndexStore
from tests.support.statbel_documents import fixture_body
from worker.contract.errors import ErrorCode, ZipscoreError
from worker.contract.index_cache import IndexCache
from worker.contract.settings import get_settings
from worker.contract.validation import parse_month
from worker.database import admin
from worker.index import service as index
from worker.index.document import IndexMonth, parse_document
from worker.index.store import PostgresHealthIndexStore

SUPPORTED = (1996, 2004, 2013, 2025)
WRONG = IndexMonth(2004, date(2150, 1, 1), Decimal("99.99"))


@pytest.fixture
def history(index_store: MemoryHealthIndexStore, index_cache: IndexCache) -> None:
    """The fixture's months, plus the wrong month stored before refusals existed, cached."""
    index_store.store([*parse_document(fixture_body(), SUPPORTED), WRONG])
    latest = index_store.latest(2004)
    assert latest is not None
    index_cache.put(index.entry_from(latest))


def cached(index_cache: IndexCache, base_year: int) -> tuple[object, object] | None:
    entry = index_cache.get(base_year)
    return None if entry is None else (entry["period"], entry["index"])


@pytest.mark.usefixtures("history")
def test_removing_the_wrong_month_makes_the_previous_one_latest_at_once(
    index_store: MemoryHealthIndexStore, index_cache: IndexCache
) -> None:
    assert cached(index_cache, 2004) == ("2150-01", 99.99)
    report = index.remove_month(index_store, index_cache, "2004", "2150-01", SUPPORTED)
    assert (report["base_year"], report["removed"], report["value"]) == (2004, "2150-01", 99.99)
    assert (report["latest"]["period"], report["latest"]["index"]) == ("2021-09", 135.61)
    assert cached(index_cache, 2004) == ("2021-09", 135.61)
    assert (2004, date(2150, 1, 1)) not in index_store.rows


@pytest.mark.usefixtures("history")
def test_a_month_that_is_not_stored_is_an_error_and_nothing_changes(
    index_store: MemoryHealthIndexStore, index_cache: IndexCache
) -> None:
    before = dict(index_store.rows)
    with pytest.raises(ZipscoreError) as caught:
        index.remove_month(index_store, index_cache, 2013, "2150-01", SUPPORTED)
    assert caught.value.code is ErrorCode.INDEX_UNAVAILABLE
    assert caught.value.message == "no stored month 2150-01 for base year 2013: nothing removed"
    assert index_store.rows == before


def test_removing_the_only_month_leaves_no_cached_answer(
    index_store: MemoryHealthIndexStore, index_cache: IndexCache
) -> None:
    index_store.store([WRONG])
    index_cache.put(index.entry_from(index_store.latest(2004)))  # type: ignore[arg-type]
    report = index.remove_month(index_store, index_cache, 2004, "2150-01", SUPPORTED)
    assert report["latest"] is None
    assert index_cache.get(2004) is None


@pytest.mark.parametrize(
    ("base_year", "month"),
    [("1988", "2150-01"), ("2004 OR 1=1", "2150-01"), ("2004", "2150-1"), ("2004", "2150-13"),
     ("2004", "January 2150"), ("2004", "2150-01'; DROP TABLE health_index; --"),
     ("2004", "0000-01"), ("2004", "x" * 100_000), ("2004", "\u0662\u0661\u0665\u0660-01")],
)  # fmt: skip
def test_malformed_input_is_wrong_year_before_anything_changes(
    index_store: MemoryHealthIndexStore, index_cache: IndexCache, base_year: str, month: str
) -> None:
    index_store.store([WRONG])
    with pytest.raises(ZipscoreError) as caught:
        index.remove_month(index_store, index_cache, base_year, month, SUPPORTED)
    assert caught.value.code is ErrorCode.WRONG_YEAR
    assert len(caught.value.message) < 120
    assert (2004, date(2150, 1, 1)) in index_store.rows


def test_months_are_written_yyyy_mm() -> None:
    assert parse_month(" 2021-09 ") == date(2021, 9, 1)


@pytest.fixture
def runner(
    index_store: MemoryHealthIndexStore, index_cache: IndexCache, monkeypatch: pytest.MonkeyPatch
) -> CliRunner:
    """The CLI with the admin command over the memory store instead of Postgres."""

    def remove(base_year: object, month: object) -> dict[str, Any]:
        return index.remove_month(index_store, index_cache, base_year, month, SUPPORTED)

    monkeypatch.setattr(admin, "remove_index_month", remove)
    return CliRunner()


def invoke(runner: CliRunner, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(cli.cli, ["index", "remove-month", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.usefixtures("history")
def test_cli_prints_one_line(runner: CliRunner) -> None:
    assert invoke(runner, "--base-year", "2004", "--month", "2150-01") == (
        0,
        "removed 2150-01 (99.99) of base year 2004; latest is now 2021-09 (135.61)\n",
        "",
    )


@pytest.mark.usefixtures("history")
def test_cli_json(runner: CliRunner) -> None:
    status, out, _ = invoke(runner, "--base-year", "2004", "--month", "2150-01", "--json")
    answer = json.loads(out)
    assert (status, answer["removed"], answer["latest"]["period"]) == (0, "2150-01", "2021-09")


@pytest.mark.usefixtures("history")
def test_cli_unknown_month_exits_1_with_its_code(runner: CliRunner) -> None:
    status, out, err = invoke(runner, "--base-year", "2004", "--month", "2150-02")
    assert (status, out) == (1, "")
    assert err == (
        "zipscore: INDEX_UNAVAILABLE: no stored month 2150-02 for base year 2004: nothing removed\n"
    )


@pytest.mark.usefixtures("history")
def test_cli_malformed_month_exits_2(runner: CliRunner) -> None:
    status, _, err = invoke(runner, "--base-year", "2004", "--month", "2150/01")
    assert status == 2
    assert err.startswith("zipscore: WRONG_YEAR: month must be YYYY-MM")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[dict[str, str]], None]]:
    """Settings from these variables for one test."""

    def use(variables: dict[str, str]) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    yield use
    get_settings.cache_clear()


def test_an_unreachable_postgres_is_backend_unavailable(
    env: Callable[[dict[str, str]], None],
    index_cache: IndexCache,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env({"ZIPSCORE_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/x",
         "ZIPSCORE_DB_CONNECT_TIMEOUT": "0.5"})  # fmt: skip
    monkeypatch.setattr(admin, "index_cache_from_settings", lambda s: index_cache)
    with pytest.raises(ZipscoreError) as caught:
        admin.remove_index_month("2004", "2150-01")
    assert caught.value.code is ErrorCode.BACKEND_UNAVAILABLE
    assert caught.value.message.startswith("Postgres at 127.0.0.1:1 is unreachable")


def test_an_unreachable_redis_stops_before_anything_is_deleted(
    env: Callable[[dict[str, str]], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    env({"ZIPSCORE_CACHE_URL": "redis://127.0.0.1:1/0"})
    removed: list[object] = []
    monkeypatch.setattr(
        PostgresHealthIndexStore, "remove", lambda self, *args: removed.append(args)
    )
    with pytest.raises(ZipscoreError) as caught:
        admin.remove_index_month("2004", "2150-01")
    assert caught.value.code is ErrorCode.BACKEND_UNAVAILABLE
    assert caught.value.message.endswith("is unreachable (ConnectionError): nothing removed")
    assert removed == []
