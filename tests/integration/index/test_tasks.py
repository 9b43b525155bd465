"""The health index through the real queue: embedded worker, real Postgres and Redis, and a
local fake Statbel (pytest-httpserver) serving recorded-shape documents, errors and delays."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import psycopg
import pytest
import redis
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from producer.client import Client
from tests.support.statbel_documents import FIXTURE_MONTHS, fixture_body, with_value
from tests.support.statbel_server import PATH, serve
from worker.beat import LockedScheduler
from worker.celery_app import app
from worker.contract.errors import ErrorCode, ZipscoreError
from worker.contract.index_cache import IndexCache, index_cache_from_settings
from worker.contract.settings import get_settings
from worker.database import admin

pytestmark = pytest.mark.usefixtures("celery_worker")


@pytest.fixture
def index_cache(redis_keys: redis.Redis) -> IndexCache:
    return index_cache_from_settings()


@pytest.fixture(autouse=True)
def empty_history(conn: psycopg.Connection, index_cache: IndexCache) -> None:
    conn.execute("TRUNCATE health_index, index_refreshes")
    for year in get_settings().index_base_years:
        index_cache.forget(year)


@pytest.fixture
def client(real_cache: object, index_cache: IndexCache) -> Client:
    return Client(index_cache=index_cache, timeout=15)


def rows(conn: psycopg.Connection) -> list[tuple[object, ...]]:
    return conn.execute(
        "SELECT base_year, period, value, fetched_at, xmin::text FROM health_index"
        " ORDER BY base_year, period"
    ).fetchall()


def refreshes(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM index_refreshes").fetchone()
    return int(row[0]) if row else 0


def test_no_refresh_yet_is_index_unavailable(client: Client) -> None:
    with pytest.raises(ZipscoreError) as caught:
        client.index(2004)
    assert caught.value.code is ErrorCode.INDEX_UNAVAILABLE


def test_a_wrong_year_in_a_raw_message_is_refused_by_the_worker(client: Client) -> None:
    with pytest.raises(ZipscoreError) as caught:
        client.call("index.latest", "1988 OR 1=1")
    assert caught.value.code is ErrorCode.WRONG_YEAR


def test_a_refresh_stores_history_and_caches_the_published_values(
    client: Client, statbel: HTTPServer, conn: psycopg.Connection, index_cache: IndexCache
) -> None:
    serve(statbel, fixture_body())
    report = client.refresh_index(timeout=30)
    assert (report.months_stored, report.months_new, report.months_changed) == (
        FIXTURE_MONTHS,
        FIXTURE_MONTHS,
        0,
    )
    stored = rows(conn)
    assert len(stored) == FIXTURE_MONTHS
    assert {(r[0], str(r[2])) for r in stored if str(r[1]) == "2021-09-01"} == {
        (1996, "154.29"),
        (2004, "135.61"),
        (2013, "112.29"),
    }
    cached = index_cache.get(2013)
    assert cached is not None
    assert (cached["index"], cached["period"]) == (112.29, "2021-09")
    answer = client.index(2004)
    assert (answer.index, answer.period, answer.stale) == (135.61, "2021-09", False)


def test_a_second_refresh_of_the_same_data_rewrites_no_row(
    client: Client, statbel: HTTPServer, conn: psycopg.Connection
) -> None:
    serve(statbel, fixture_body())
    client.refresh_index(timeout=30)
    before = rows(conn)
    again = client.refresh_index(timeout=30)
    assert (again.months_new, again.months_changed) == (0, 0)
    assert rows(conn) == before  # same values, same fetched_at, same row versions (xmin)
    assert refreshes(conn) == 2


def test_a_revised_month_is_updated_in_place(
    client: Client, statbel: HTTPServer, conn: psycopg.Connection
) -> None:
    serve(statbel, fixture_body())
    client.refresh_index(timeout=30)
    serve(statbel, with_value(2004, "September 2021", 135.66))
    report = client.refresh_index(timeout=30)
    assert (report.months_new, report.months_changed) == (0, 1)
    assert client.index(2004).index == 135.66
    assert len(rows(conn)) == FIXTURE_MONTHS


def test_statbel_errors_are_retried_then_fail_and_the_previous_values_stay(
    client: Client, statbel: HTTPServer, conn: psycopg.Connection, index_cache: IndexCache
) -> None:
    serve(statbel, fixture_body())
    client.refresh_index(timeout=30)
    before = rows(conn)
    serve(statbel, b"busy", status=503)
    with pytest.raises(ZipscoreError) as caught:
        # The message beat's schedule sends: no `retry`, so Celery retries it.
        client.call(
            "index.refresh", timeout=30, failure_code=ErrorCode.INDEX_UNAVAILABLE, expires=False
        )
    assert caught.value.code is ErrorCode.INDEX_UNAVAILABLE
    assert "HTTP 503" in caught.value.message
    assert len(statbel.log) == get_settings().index_retry_max_retries + 1
    assert rows(conn) == before
    # Much later, with refreshes still failing: the last good value, marked stale.
    conn.execute("UPDATE index_refreshes SET refreshed_at = now() - interval '4 days'")
    index_cache.forget(2004)
    answer = client.index(2004)
    assert (answer.index, answer.stale) == (135.61, True)


def test_a_refresh_someone_waits_for_answers_the_fault_after_one_try(
    client: Client, statbel: HTTPServer, conn: psycopg.Connection
) -> None:
    """`zipscore index refresh` used to be retried for minutes while its caller timed out."""
    serve(statbel, b"busy", status=503)
    started = time.monotonic()
    with pytest.raises(ZipscoreError) as caught:
        client.refresh_index(timeout=30)
    assert time.monotonic() - started < 5
    assert caught.value.code is ErrorCode.INDEX_UNAVAILABLE
    assert caught.value.message == f"Statbel (localhost:{statbel.port}) answered HTTP 503"
    time.sleep(1.5)  # a retry's countdown is 0-1 s in this run: it would have come by now
    assert len(statbel.log) == 1
    assert refreshes(conn) == 0


def with_fact(fact: dict[str, object]) -> bytes:
    """The fixture with one more fact."""
    raw = json.loads(fixture_body())
    raw["facts"].append(fact)
    return json.dumps(raw).encode()


def test_a_month_in_the_future_refuses_the_refresh_and_the_latest_month_stays(
    client: Client, statbel: HTTPServer, conn: psycopg.Connection
) -> None:
    serve(statbel, fixture_body())
    client.refresh_index(timeout=30)
    before = rows(conn)
    serve(
        statbel,
        with_fact({"Base year": "2004 = 100", "Health index": 99.99, "Month": "January 2150"}),
    )
    with pytest.raises(ZipscoreError) as caught:
        client.refresh_index(timeout=30)
    assert caught.value.code is ErrorCode.INDEX_UNAVAILABLE
    assert caught.value.message.startswith("the document was refused: ")
    assert "2150-01 of base 2004 is after the current month" in caught.value.message
    assert len(statbel.log) == 1  # refused, not retried: the same document would come back
    assert rows(conn) == before
    assert (client.index(2004).index, client.index(2004).period) == (135.61, "2021-09")


def test_an_operator_removes_a_wrong_month_and_the_latest_is_recomputed_at_once(
    client: Client, statbel: HTTPServer, conn: psycopg.Connection, index_cache: IndexCache
) -> None:
    serve(statbel, fixture_body())
    client.refresh_index(timeout=30)
    # Stored before future months were refused: the latest month for good, and cached.
    conn.execute(
        "INSERT INTO health_index (base_year, period, value, fetched_at)"
        " VALUES (2004, '2150-01-01', 99.99, now())"
    )
    index_cache.forget(2004)
    assert (client.index(2004).index, client.index(2004).period) == (99.99, "2150-01")
    assert index_cache.get(2004) is not None

    report = admin.remove_index_month("2004", "2150-01")

    assert (report["removed"], report["value"], report["latest"]["period"]) == (
        "2150-01",
        99.99,
        "2021-09",
    )
    assert (client.index(2004).index, client.index(2004).period) == (135.61, "2021-09")
    assert len(rows(conn)) == FIXTURE_MONTHS
    with pytest.raises(ZipscoreError) as again:
        admin.remove_index_month("2004", "2150-01")
    assert again.value.code is ErrorCode.INDEX_UNAVAILABLE


@pytest.mark.parametrize(
    ("base_year", "month"),
    [("2004", "2021-09' OR '1'='1"), ("2004 OR 1=1", "2021-09"), ("2004", "2021-09; --")],
)
def test_remove_month_refuses_injections_before_touching_postgres(
    client: Client, statbel: HTTPServer, conn: psycopg.Connection, base_year: str, month: str
) -> None:
    serve(statbel, fixture_body())
    client.refresh_index(timeout=30)
    before = rows(conn)
    with pytest.raises(ZipscoreError) as caught:
        admin.remove_index_month(base_year, month)
    assert caught.value.code is ErrorCode.WRONG_YEAR
    assert rows(conn) == before


def test_slow_answers_time_out_and_are_retried(client: Client, statbel: HTTPServer) -> None:
    release = threading.Event()

    def slow(request: Request) -> Response:
        release.wait(2)  # longer than the source's 0.5 s timeout, unless released
        return Response(fixture_body(), content_type="application/json")

    statbel.expect_request(PATH).respond_with_handler(slow)
    started = time.monotonic()
    try:
        with pytest.raises(ZipscoreError) as caught:
            client.refresh_index(timeout=30)
    finally:
        release.set()
    assert "took longer" in caught.value.message or "Timeout" in caught.value.message
    assert time.monotonic() - started < 20


def test_beat_holds_the_refresh_and_its_start_refills_an_empty_history(
    statbel: HTTPServer, conn: psycopg.Connection, tmp_path: Path
) -> None:
    serve(statbel, fixture_body())
    scheduler = LockedScheduler(app=app, schedule_filename=str(tmp_path / "celerybeat-schedule"))
    try:
        assert scheduler.schedule["index-refresh"].task == "index.refresh"
        scheduler.tick()  # takes the lock, sends index.refresh(if_empty=True)
        assert scheduler.holds_lock
        deadline = time.monotonic() + 20
        while refreshes(conn) == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        scheduler.close()
    assert len(rows(conn)) == FIXTURE_MONTHS
