"""`Client.index` / `Client.refresh_index` and `zipscore index [refresh]`, run eagerly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx
from click.testing import CliRunner

from producer.cli import main as cli
from producer.client import Client
from tests.support.fakes import STATBEL_TEST_URL, MemoryHealthIndexStore
from tests.support.statbel_documents import FIXTURE_MONTHS, fixture_body
from worker.contract.answers import IndexAnswer, RefreshReport
from worker.contract.errors import ErrorCode, ZipscoreError
from worker.contract.index_cache import IndexCache
from worker.contract.result_cache import ResultCache

Sent = list[tuple[str, tuple[Any, ...]]]


@pytest.fixture
def client(cache: ResultCache, index_cache: IndexCache, index_eager: Sent) -> Client:
    return Client(cache=cache, index_cache=index_cache, timeout=1.0)


@pytest.fixture
def refreshed(client: Client) -> None:
    """The fixture document has been refreshed into the store and the cache."""
    with respx.mock:
        respx.get(STATBEL_TEST_URL).mock(return_value=httpx.Response(200, content=fixture_body()))
        client.refresh_index()


def test_the_default_base_year_is_2004_then_answered_from_the_cache(
    client: Client, index_eager: Sent, refreshed: None
) -> None:
    index_eager.clear()
    first = client.index()
    assert (first.base_year, first.index, first.period, first.stale) == (
        2004,
        135.61,
        "2021-09",
        False,
    )
    assert client.index("2004") == first
    assert index_eager == []  # the refresh warmed the cache: no task was needed


def test_a_cold_cache_goes_through_the_queue_once(
    client: Client, index_eager: Sent, index_cache: IndexCache, refreshed: None
) -> None:
    index_cache.forget(2013)
    index_eager.clear()
    assert client.index(2013).index == 112.29
    assert client.index(2013).index == 112.29
    assert index_eager == [("index.latest", (2013,))]


@pytest.mark.parametrize("bad", [1988, "2005", "x", "2004 = 100"])
def test_unsupported_base_years_are_refused_before_sending(
    client: Client, index_eager: Sent, bad: object
) -> None:
    with pytest.raises(ZipscoreError) as caught:
        client.index(bad)  # type: ignore[arg-type]
    assert caught.value.code is ErrorCode.WRONG_YEAR
    assert index_eager == []


def test_no_data_yet_is_index_unavailable(client: Client) -> None:
    with pytest.raises(ZipscoreError) as caught:
        client.index(2004)
    assert caught.value.code is ErrorCode.INDEX_UNAVAILABLE


def test_a_cached_answer_turns_stale_without_any_refresh(
    client: Client, index_cache: IndexCache
) -> None:
    old = (datetime.now(UTC) - timedelta(days=4)).isoformat()
    index_cache.put({"base_year": 2004, "index": 135.61, "period": "2021-09", "fetched_at": old})
    assert client.index(2004) == IndexAnswer(
        base_year=2004, index=135.61, period="2021-09", fetched_at=old, stale=True
    )


@respx.mock
def test_refresh_index_reports_months_stored_and_new(client: Client) -> None:
    respx.get(STATBEL_TEST_URL).mock(return_value=httpx.Response(200, content=fixture_body()))
    report = client.refresh_index()
    assert isinstance(report, RefreshReport)
    assert (report.months_stored, report.months_new, report.months_changed) == (
        FIXTURE_MONTHS,
        FIXTURE_MONTHS,
        0,
    )
    assert client.refresh_index().months_new == 0


@respx.mock
def test_a_failed_refresh_is_index_unavailable_with_the_reason_after_one_try(
    client: Client,
) -> None:
    """It used to be retried (and the caller left waiting) like the scheduled refresh."""
    route = respx.get(STATBEL_TEST_URL).mock(return_value=httpx.Response(503))
    with pytest.raises(ZipscoreError) as caught:
        client.refresh_index()
    assert caught.value.code is ErrorCode.INDEX_UNAVAILABLE
    assert caught.value.message == "Statbel (statbel.test) answered HTTP 503"
    assert route.call_count == 1


@pytest.fixture
def runner(client: Client, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setattr(cli, "make_client", lambda: client)
    return CliRunner()


def invoke(runner: CliRunner, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(cli.cli, list(args), standalone_mode=True)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.usefixtures("refreshed")
def test_cli_index_json(runner: CliRunner) -> None:
    status, out, err = invoke(runner, "index", "--base-year", "2004", "--json")
    answer = json.loads(out)
    assert (status, err) == (0, "")
    assert set(answer) == {"base_year", "index", "period", "fetched_at", "stale"}
    assert (answer["base_year"], answer["index"], answer["period"], answer["stale"]) == (
        2004,
        135.61,
        "2021-09",
        False,
    )


@pytest.mark.usefixtures("refreshed")
def test_cli_index_human(runner: CliRunner) -> None:
    assert invoke(runner, "index", "--base-year", "1996") == (
        0,
        "154.29 (1996 = 100, 2021-09)\n",
        "",
    )
    assert invoke(runner, "index")[1] == "135.61 (2004 = 100, 2021-09)\n"


def test_cli_index_says_when_stale(runner: CliRunner, index_cache: IndexCache) -> None:
    index_cache.put(
        {
            "base_year": 2004,
            "index": 135.61,
            "period": "2021-09",
            "fetched_at": "2021-10-01T06:00:00+00:00",
        }
    )
    status, out, _ = invoke(runner, "index")
    assert status == 0
    assert out == "135.61 (2004 = 100, 2021-09); stale: last refreshed 2021-10-01T06:00:00+00:00\n"


@pytest.mark.parametrize("args", [["--base-year", "1988"], ["--base-year", "abc", "--json"]])
def test_cli_wrong_year_exits_2_with_one_line(runner: CliRunner, args: list[str]) -> None:
    status, out, err = invoke(runner, "index", *args)
    assert status == 2
    assert err.startswith("zipscore: WRONG_YEAR: ")
    assert err.count("\n") == 1
    if "--json" in args:
        assert json.loads(out)["error"]["code"] == "WRONG_YEAR"


def test_cli_no_data_exits_1(runner: CliRunner) -> None:
    status, out, err = invoke(runner, "index", "--json")
    assert status == 1
    assert json.loads(out)["error"]["code"] == "INDEX_UNAVAILABLE"
    assert err.startswith("zipscore: INDEX_UNAVAILABLE: no health index for base year 2004")


@respx.mock
def test_cli_refresh(runner: CliRunner) -> None:
    respx.get(STATBEL_TEST_URL).mock(return_value=httpx.Response(200, content=fixture_body()))
    status, out, _ = invoke(runner, "index", "refresh")
    assert status == 0
    assert out == (
        f"stored {FIXTURE_MONTHS} months ({FIXTURE_MONTHS} new, 0 changed) "
        "for base years 1996, 2004, 2013, 2025\n"
    )
    status, out, _ = invoke(runner, "index", "refresh", "--json")
    report = json.loads(out)
    assert (status, report["months_stored"], report["months_new"]) == (0, FIXTURE_MONTHS, 0)


@respx.mock
def test_cli_refresh_failure_exits_1_and_keeps_serving(
    runner: CliRunner, index_store: MemoryHealthIndexStore
) -> None:
    respx.get(STATBEL_TEST_URL).mock(side_effect=httpx.ConnectError("refused"))
    status, out, err = invoke(runner, "index", "refresh", "--json")
    assert status == 1
    assert json.loads(out)["error"]["code"] == "INDEX_UNAVAILABLE"
    assert err == (
        "zipscore: INDEX_UNAVAILABLE: Statbel (statbel.test) unreachable: ConnectError 'refused'\n"
    )
    assert index_store.rows == {}


def test_console_refuses_a_wrong_year_without_a_broker() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "producer.cli.main", "index", "--base-year", "1988"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, "ZIPSCORE_REDIS_URL": "redis://127.0.0.1:1/0"},
    )
    assert done.returncode == 2
    assert done.stderr == (
        "zipscore: WRONG_YEAR: base year must be one of 1996, 2004, 2013, 2025, not '1988'\n"
    )
