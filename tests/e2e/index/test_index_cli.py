"""`zipscore index` as a user types it, against a real worker process and Postgres."""

from __future__ import annotations

import json
from collections.abc import Iterator

import psycopg
import pytest

from tests.support.console import console
from tests.support.statbel_documents import fixture_body
from worker.database import pool as db
from worker.index.document import parse_document
from worker.index.store import PostgresHealthIndexStore

pytestmark = pytest.mark.usefixtures("worker_process")


@pytest.fixture
def history(conn: psycopg.Connection) -> Iterator[None]:
    """The fixture's months stored as a refresh would store them."""
    conn.execute("TRUNCATE health_index, index_refreshes")
    PostgresHealthIndexStore(db.get_pool()).store(parse_document(fixture_body(), (2004, 2013)))
    yield
    conn.execute("TRUNCATE health_index, index_refreshes")


@pytest.mark.usefixtures("history")
def test_index_through_the_worker_then_from_the_cache(e2e_env: dict[str, str]) -> None:
    cold = console("index", "--base-year", "2013", "--json", env=e2e_env)
    warm = console("index", "--base-year", "2013", "--json", env=e2e_env)
    assert (cold.returncode, warm.returncode) == (0, 0), cold.stderr + warm.stderr
    assert json.loads(cold.stdout) == json.loads(warm.stdout)
    answer = json.loads(cold.stdout)
    assert (answer["base_year"], answer["index"], answer["period"], answer["stale"]) == (
        2013,
        112.29,
        "2021-09",
        False,
    )


def test_index_wrong_year_exits_2(e2e_env: dict[str, str]) -> None:
    done = console("index", "--base-year", "1999", env=e2e_env)
    assert done.returncode == 2
    assert done.stderr.startswith("zipscore: WRONG_YEAR: ")


@pytest.mark.usefixtures("history")
def test_remove_month_as_an_operator_types_it(
    e2e_env: dict[str, str], conn: psycopg.Connection
) -> None:
    conn.execute(
        "INSERT INTO health_index (base_year, period, value, fetched_at)"
        " VALUES (2004, '2150-01-01', 99.99, now())"
    )
    before = console("index", "--json", env=e2e_env)
    assert json.loads(before.stdout)["period"] == "2150-01", before.stderr

    removed = console(
        "index", "remove-month", "--base-year", "2004", "--month", "2150-01", env=e2e_env
    )
    after = console("index", "--json", env=e2e_env)
    again = console(
        "index", "remove-month", "--base-year", "2004", "--month", "2150-01", env=e2e_env
    )
    malformed = console(
        "index", "remove-month", "--base-year", "2004", "--month", "2150-1", env=e2e_env
    )
    missing = console("index", "remove-month", "--base-year", "2004", env=e2e_env)

    assert (removed.returncode, removed.stderr) == (0, "")
    assert removed.stdout == (
        "removed 2150-01 (99.99) of base year 2004; latest is now 2021-09 (135.61)\n"
    )
    assert (json.loads(after.stdout)["period"], json.loads(after.stdout)["index"]) == (
        "2021-09",
        135.61,
    )
    assert (again.returncode, again.stdout) == (1, "")
    assert again.stderr == (
        "zipscore: INDEX_UNAVAILABLE: no stored month 2150-01 for base year 2004: nothing removed\n"
    )
    assert malformed.returncode == 2
    assert malformed.stderr.startswith("zipscore: WRONG_YEAR: month must be YYYY-MM")
    assert missing.returncode == 2
    assert missing.stderr.startswith("zipscore: USAGE: Missing option '--month'")
    assert missing.stderr.endswith("(try: zipscore index remove-month --help)\n")
    for done in (again, malformed, missing):
        assert len(done.stderr.splitlines()) == 1
