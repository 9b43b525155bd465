"""Health index tasks run eagerly: Statbel mocked with respx, memory store, fakeredis cache."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis
import respx

from tests.support.fakes import STATBEL_TEST_URL, MemoryHealthIndexStore
from tests.support.settings import MakeSettings
from tests.support.statbel_documents import (
    FIXTURE_MONTHS,
    LATEST_2025,
    PUBLISHED_SEPTEMBER_2021,
    document,
    fact,
    fixture_body,
    with_value,
)
from worker.celery_app import app
from worker.contract.index_cache import IndexCache
from worker.contract.settings import get_settings
from worker.index import service as index
from worker.index.document import DocumentRefused
from worker.index.statbel import SourceRefused, SourceUnavailable
from worker.index.tasks import longest_retry_wait, retry_policy

pytestmark = pytest.mark.usefixtures("index_eager")
SUPPORTED = (1996, 2004, 2013, 2025)


def statbel(*answers: httpx.Response | Exception) -> respx.Route:
    """Statbel answers these, in order (the last one repeats)."""
    sequence = list(answers)

    def answer(request: httpx.Request) -> httpx.Response:
        item = sequence.pop(0) if len(sequence) > 1 else sequence[0]
        if isinstance(item, Exception):
            raise item
        return item

    route = respx.get(STATBEL_TEST_URL).mock(side_effect=answer)
    route.reset()  # the same route again when a test changes Statbel's answer: count anew
    return route


def refresh(**kwargs: Any) -> Any:
    return app.tasks["index.refresh"].apply(kwargs=kwargs)


def latest(base_year: object) -> Any:
    return app.tasks["index.latest"].apply(args=(base_year,)).get()


@respx.mock
def test_a_refresh_stores_every_month_and_caches_the_latest(
    index_store: MemoryHealthIndexStore, index_cache: IndexCache
) -> None:
    statbel(httpx.Response(200, content=fixture_body()))
    report = refresh().get()
    assert report["months_stored"] == report["months_new"] == FIXTURE_MONTHS
    assert report["months_changed"] == 0
    assert report["base_years"] == list(SUPPORTED)
    assert len(index_store.rows) == FIXTURE_MONTHS
    cached = index_cache.get(2004)
    assert cached is not None
    assert {k: cached[k] for k in ("base_year", "index", "period")} == {
        "base_year": 2004,
        "index": 135.61,
        "period": "2021-09",
    }


@respx.mock
@pytest.mark.parametrize(("base_year", "value"), sorted(PUBLISHED_SEPTEMBER_2021.items()))
def test_latest_answers_the_published_values(base_year: int, value: float) -> None:
    statbel(httpx.Response(200, content=fixture_body()))
    refresh().get()
    answer = latest(base_year)
    assert answer["index"] == value
    assert answer["period"] == "2021-09"
    assert answer["stale"] is False
    assert datetime.fromisoformat(answer["fetched_at"]).tzinfo is not None


@respx.mock
def test_base_2025_answers_its_own_latest_month() -> None:
    statbel(httpx.Response(200, content=fixture_body()))
    refresh().get()
    answer = latest("2025")
    assert (answer["period"], answer["index"]) == (LATEST_2025["period"], LATEST_2025["index"])


@respx.mock
def test_a_second_refresh_of_the_same_data_changes_nothing(
    index_store: MemoryHealthIndexStore,
) -> None:
    statbel(httpx.Response(200, content=fixture_body()))
    refresh().get()
    rows_before = dict(index_store.rows)
    index_store.now += timedelta(hours=1)
    again = refresh().get()
    assert (again["months_stored"], again["months_new"], again["months_changed"]) == (
        FIXTURE_MONTHS,
        0,
        0,
    )
    assert index_store.rows == rows_before


@respx.mock
def test_a_revised_value_is_updated_and_reported() -> None:
    statbel(httpx.Response(200, content=fixture_body()))
    refresh().get()
    statbel(httpx.Response(200, content=with_value(2004, "September 2021", 135.7)))
    report = refresh().get()
    assert (report["months_new"], report["months_changed"]) == (0, 1)
    assert latest(2004)["index"] == 135.7


TRANSIENT_FAULTS = [
    httpx.ConnectError("connection refused"),
    httpx.ReadTimeout("read timed out"),
    httpx.Response(503, text="maintenance"),
    httpx.Response(500),
    httpx.Response(429, headers={"Retry-After": "60"}),
]


@respx.mock
@pytest.mark.parametrize("fault", TRANSIENT_FAULTS, ids=lambda f: repr(f)[:30])
def test_transient_faults_are_retried_a_bounded_number_of_times_then_fail(
    fault: httpx.Response | Exception,
    index_store: MemoryHealthIndexStore,
    index_cache: IndexCache,
) -> None:
    route = statbel(fault)
    result = refresh()
    assert result.state == "FAILURE"
    assert isinstance(result.result, SourceUnavailable)
    assert route.call_count == get_settings().index_retry_max_retries + 1
    assert index_store.rows == {}
    assert index_cache.get(2004) is None


@respx.mock
def test_a_fault_then_success_is_retried_into_a_success() -> None:
    route = statbel(httpx.ConnectError("down"), httpx.Response(200, content=fixture_body()))
    assert refresh().get()["months_new"] == FIXTURE_MONTHS
    assert route.call_count == 2


REFUSED = [
    (httpx.Response(404), SourceRefused),
    (httpx.Response(200, text="<html>maintenance</html>"), DocumentRefused),
    (httpx.Response(200, content=document(fact(value=-5))), DocumentRefused),
    (httpx.Response(200, content=document(fact(value="135.61"))), DocumentRefused),
    (httpx.Response(200, content=b'{"facts": 12}'), DocumentRefused),
    (httpx.Response(200, content=b"x" * 10_000_000), SourceRefused),
]


@respx.mock
@pytest.mark.parametrize(("answer", "error"), REFUSED, ids=lambda x: repr(x)[:40])
def test_refused_answers_fail_at_once_and_keep_the_previous_values(
    answer: httpx.Response, error: type[Exception], index_store: MemoryHealthIndexStore
) -> None:
    statbel(httpx.Response(200, content=fixture_body()))
    refresh().get()
    rows_before = dict(index_store.rows)
    route = statbel(answer)
    result = refresh()
    assert result.state == "FAILURE"
    assert isinstance(result.result, error)
    assert route.call_count == 1
    assert index_store.rows == rows_before
    assert latest(2004)["index"] == 135.61


@respx.mock
def test_a_cache_outage_after_storing_is_retried_and_idempotent(
    index_store: MemoryHealthIndexStore, monkeypatch: pytest.MonkeyPatch, index_cache: IndexCache
) -> None:
    statbel(httpx.Response(200, content=fixture_body()))
    failures = iter([redis.ConnectionError("down")])
    real_put = index_cache.put

    def flaky_put(entry: dict[str, Any]) -> None:
        for failure in failures:
            raise failure
        real_put(entry)

    monkeypatch.setattr(index_cache, "put", flaky_put)
    report = refresh().get()
    assert (report["months_new"], report["months_changed"]) == (0, 0)  # stored on try 1
    assert len(index_store.refreshes) == 2
    assert index_cache.get(2004) is not None


@respx.mock
def test_the_start_up_refresh_runs_only_on_an_empty_history() -> None:
    route = statbel(httpx.Response(200, content=fixture_body()))
    assert refresh(if_empty=True).get()["months_new"] == FIXTURE_MONTHS
    assert refresh(if_empty=True).get() == {
        "skipped": True,
        "months_stored": 0,
        "months_new": 0,
        "months_changed": 0,
    }
    assert route.call_count == 1


@respx.mock
def test_if_empty_false_is_a_plain_refresh() -> None:
    route = statbel(httpx.Response(200, content=fixture_body()))
    refresh().get()
    assert refresh(if_empty=False).get()["skipped"] is False
    assert route.call_count == 2


@respx.mock
@pytest.mark.parametrize(
    "bad", ["yes", "true", 1, 0, None, [True], {"if_empty": True}, "2004; DROP TABLE health_index"]
)
def test_an_if_empty_that_is_not_a_boolean_is_refused_before_any_fetch(
    bad: object, index_store: MemoryHealthIndexStore
) -> None:
    """It used to run a whole refresh (fetch, upsert, a row in index_refreshes)."""
    route = statbel(httpx.Response(200, content=fixture_body()))
    answer = refresh(if_empty=bad).get()
    assert answer["error"]["code"] == "INDEX_UNAVAILABLE"
    assert route.call_count == 0
    assert index_store.refreshes == []


@pytest.mark.parametrize("bad", [1988, "2005", "2004 = 100", None, True, [2004], "1996; DROP"])
def test_unsupported_base_years_get_wrong_year_without_a_query(
    bad: object, index_store: MemoryHealthIndexStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index_store, "latest", lambda year: pytest.fail("queried"))
    assert latest(bad)["error"]["code"] == "WRONG_YEAR"


def test_no_data_yet_is_index_unavailable_and_not_cached(index_cache: IndexCache) -> None:
    answer = latest(2004)
    assert answer["error"]["code"] == "INDEX_UNAVAILABLE"
    assert index_cache.get(2004) is None


@respx.mock
def test_an_answer_turns_stale_when_refreshes_stop_succeeding(
    index_store: MemoryHealthIndexStore, index_cache: IndexCache
) -> None:
    statbel(httpx.Response(200, content=fixture_body()))
    refresh().get()
    fetched = index_store.refreshes[-1][0]
    limit = get_settings().index_stale_after_seconds

    def at(moment: datetime) -> dict[str, Any]:
        return index.latest(
            index_store, index_cache, 2004, SUPPORTED, stale_after_seconds=limit, now=moment
        )

    assert at(fetched + timedelta(seconds=limit - 1))["stale"] is False
    assert at(fetched + timedelta(seconds=limit + 1))["stale"] is True
    statbel(httpx.Response(503))
    assert refresh().state == "FAILURE"
    later = at(fetched + timedelta(days=30))
    assert (later["index"], later["stale"]) == (135.61, True)
    assert later["fetched_at"] == fetched.astimezone(UTC).isoformat()


def test_a_base_year_missing_from_later_documents_turns_stale_alone(
    index_store: MemoryHealthIndexStore, index_cache: IndexCache
) -> None:
    with respx.mock:
        statbel(httpx.Response(200, content=fixture_body()))
        refresh().get()
    index_store.now += timedelta(days=10)
    with respx.mock:
        statbel(httpx.Response(200, content=document(fact(2013, 112.5, "October 2021"))))
        refresh().get()
    now = index_store.now + timedelta(hours=1)
    limit = get_settings().index_stale_after_seconds
    fresh = index.latest(
        index_store, index_cache, 2013, SUPPORTED, stale_after_seconds=limit, now=now
    )
    old = index.latest(
        index_store, index_cache, 2004, SUPPORTED, stale_after_seconds=limit, now=now
    )
    assert (fresh["period"], fresh["stale"]) == ("2021-10", False)
    assert (old["period"], old["stale"]) == ("2021-09", True)


def test_the_retry_policy_is_bounded_and_well_under_the_visibility_timeout() -> None:
    task = app.tasks["index.refresh"]
    settings = get_settings()
    assert SourceUnavailable in task.autoretry_for
    assert httpx.HTTPError not in task.autoretry_for  # only mapped, classified faults
    assert DocumentRefused not in task.autoretry_for
    assert SourceRefused not in task.autoretry_for
    assert task.max_retries == settings.index_retry_max_retries
    assert task.retry_jitter is True
    assert task.retry_backoff == settings.index_retry_backoff_seconds
    assert task.retry_backoff_max == settings.index_retry_backoff_max_seconds
    visibility = app.conf.broker_transport_options["visibility_timeout"]
    assert task.retry_backoff_max + settings.task_time_limit < visibility / 2


def test_the_default_policy_waits_minutes_not_an_hour(
    monkeypatch: pytest.MonkeyPatch, make_settings: MakeSettings
) -> None:
    for name in ("MAX_RETRIES", "BACKOFF_SECONDS", "BACKOFF_MAX_SECONDS"):
        monkeypatch.delenv(f"ZIPSCORE_INDEX_RETRY_{name}", raising=False)
    defaults = make_settings()
    policy = retry_policy(defaults)
    assert (policy["max_retries"], policy["retry_backoff"], policy["retry_backoff_max"]) == (
        6,
        5,
        300,
    )
    # 5 + 10 + 20 + 40 + 80 + 160 s: the longest chain is 5 min 15 s, each countdown at
    # most 5 min, against a visibility timeout of an hour.
    assert longest_retry_wait(defaults) == 315
    assert longest_retry_wait(defaults) < defaults.visibility_timeout_seconds / 4


def test_index_tasks_are_named_and_routed_to_the_index_queue() -> None:
    app.loader.import_default_modules()
    assert {"index.refresh", "index.latest"} <= set(app.tasks)
    assert app.amqp.router.route({}, "index.refresh")["queue"].name == "index"


@respx.mock
@pytest.mark.parametrize("fault", TRANSIENT_FAULTS, ids=lambda f: repr(f)[:30])
def test_a_refresh_someone_waits_for_tries_once_and_answers_the_cause(
    fault: httpx.Response | Exception, index_store: MemoryHealthIndexStore
) -> None:
    """`zipscore index refresh` used to be retried like beat's: minutes, then a TIMEOUT."""
    route = statbel(fault)
    result = refresh(retry=False)
    assert result.state == "SUCCESS"
    error = result.get()["error"]
    assert error["code"] == "INDEX_UNAVAILABLE"
    assert error["message"].startswith("Statbel (statbel.test) ")
    assert route.call_count == 1
    assert index_store.refreshes == []


@respx.mock
def test_an_unreachable_source_is_named_with_the_os_cause() -> None:
    statbel(httpx.ConnectError("[Errno -2] Name or service not known"))
    assert refresh(retry=False).get()["error"]["message"] == (
        "Statbel (statbel.test) unreachable: ConnectError '[Errno -2] Name or service not known'"
    )


@respx.mock
def test_a_backend_down_during_a_refresh_someone_waits_for_is_backend_unavailable(
    index_cache: IndexCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    route = statbel(httpx.Response(200, content=fixture_body()))

    def down(entry: dict[str, Any]) -> None:
        raise redis.ConnectionError("Error 111 connecting to redis://:secret@10.0.0.1:6379")

    monkeypatch.setattr(index_cache, "put", down)
    assert refresh(retry=False).get()["error"] == {
        "code": "BACKEND_UNAVAILABLE",
        "message": "Redis unreachable (ConnectionError)",
    }
    assert route.call_count == 1


@respx.mock
@pytest.mark.parametrize("bad", ["false", 0, None, [False], {"retry": False}])
def test_a_retry_that_is_not_a_boolean_is_refused_before_any_fetch(
    bad: object, index_store: MemoryHealthIndexStore
) -> None:
    route = statbel(httpx.Response(200, content=fixture_body()))
    answer = refresh(retry=bad).get()
    assert answer["error"]["code"] == "INDEX_UNAVAILABLE"
    assert answer["error"]["message"].startswith("index.refresh: retry must be true or false")
    assert route.call_count == 0
    assert index_store.refreshes == []


@respx.mock
def test_beats_message_without_retry_is_still_retried() -> None:
    route = statbel(httpx.ConnectError("down"), httpx.Response(200, content=fixture_body()))
    assert refresh(if_empty=True).get()["months_new"] == FIXTURE_MONTHS
    assert route.call_count == 2


@respx.mock
@pytest.mark.parametrize(
    ("answer", "retries", "cause"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused"), 2, "Statbel (statbel.test) unr"),
        (httpx.Response(404), 0, "Statbel (statbel.test) answered HTTP 404"),
        (httpx.Response(200, text="<html/>"), 0, "the document was refused: "),
    ],
    ids=["unreachable", "404", "not-a-document"],
)
def test_a_scheduled_refresh_that_gives_up_says_so_in_one_error_line(
    answer: httpx.Response | Exception,
    retries: int,
    cause: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """It used to be Celery's 'raised unexpected' ERROR with a 40-line traceback."""
    statbel(answer)
    caplog.set_level("INFO")
    assert refresh().state == "FAILURE"
    errors = [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
    assert [r.name for r in errors] == ["worker.index.tasks"]
    prefix = f"health index refresh failed after {retries} retr"
    assert errors[0].getMessage().startswith(prefix)
    assert cause in errors[0].getMessage()
    assert errors[0].getMessage().endswith("; the previous values stay in service")
    assert all(r.exc_info is None and "Traceback" not in r.getMessage() for r in caplog.records)
    retried = [r for r in caplog.records if " retry: Retry in " in r.getMessage()]
    assert len(retried) == retries
    assert all(cause[:12] in r.getMessage() for r in retried)
