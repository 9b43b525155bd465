"""Lookup tasks run eagerly against a dict table and fakeredis."""

from __future__ import annotations

import logging
import subprocess
import sys
from typing import Any

import psycopg
import pytest

from tests.support.fakes import DictZipcodeStore
from worker import task_guard as tasks
from worker.celery_app import TASK_MODULES, app
from worker.contract.result_cache import ResultCache
from worker.lookups.risk_table import Rule


def run(name: str, *args: Any) -> Any:
    return app.tasks[name].apply(args=args).get()


@pytest.mark.usefixtures("eager")
def test_lookup_answers_and_caches_under_the_table_version(cache: ResultCache) -> None:
    answer = run("zipcodes.lookup", 9000)
    assert answer == {"zipcode": 9000, "risk_factor": "B", "exists": True}
    assert cache.get("lookup", 9000) == answer


@pytest.mark.usefixtures("eager")
def test_valid_but_unknown_zipcode_exists_false() -> None:
    assert run("zipcodes.lookup", "1501") == {"zipcode": 1501, "risk_factor": None, "exists": False}


@pytest.mark.usefixtures("eager")
@pytest.mark.parametrize("bad", [999, "10000", "abc", None, [1], {"a": 1}, 12.5, True])
def test_a_task_message_with_a_bad_zipcode_gets_an_error_envelope(
    bad: object, store: DictZipcodeStore
) -> None:
    answer = run("zipcodes.lookup", bad)
    assert answer["error"]["code"] == "ZIPCODE_NOT_VALID"
    assert store.queries == 0


@pytest.mark.usefixtures("eager")
def test_by_risk_factor_lists_ascending() -> None:
    answer = run("zipcodes.by_risk_factor", "a")
    assert answer["risk_factor"] == "A"
    assert answer["zipcodes"] == list(range(9170, 9241))
    assert answer["count"] == 71


@pytest.mark.usefixtures("eager")
def test_injection_in_a_task_message_reaches_no_query(store: DictZipcodeStore) -> None:
    answer = run("zipcodes.by_risk_factor", "A' OR '1'='1")
    assert answer["error"]["code"] == "RISK_FACTOR_NOT_VALID"
    assert store.queries == 0


@pytest.mark.usefixtures("eager")
def test_reload_changes_the_answer_with_no_stale_cache(
    store: DictZipcodeStore, cache: ResultCache
) -> None:
    assert run("zipcodes.lookup", 9000)["risk_factor"] == "B"
    store.load([Rule(9000, 9000, "C")])
    cache.publish_version(store.version)
    assert cache.get("lookup", 9000) is None
    assert run("zipcodes.lookup", 9000)["risk_factor"] == "C"


def test_database_faults_are_retried_with_backoff_and_a_bound() -> None:
    task = app.tasks["zipcodes.lookup"]
    assert psycopg.OperationalError in task.autoretry_for
    assert task.max_retries == 5
    assert task.retry_jitter is True
    longest_total_wait = sum(min(2**n, task.retry_backoff_max) for n in range(task.max_retries))
    assert longest_total_wait < app.conf.broker_transport_options["visibility_timeout"]


def test_transient_errors_are_not_swallowed_into_envelopes() -> None:
    def broken() -> dict[str, Any]:
        raise psycopg.OperationalError("down")

    with pytest.raises(psycopg.OperationalError):
        tasks.answer(broken)


def test_task_names_are_explicit_and_routed() -> None:
    app.loader.import_default_modules()
    assert {"zipcodes.lookup", "zipcodes.by_risk_factor"} <= set(app.tasks)
    routes = app.conf.task_routes
    assert routes["zipcodes.*"] == {"queue": "lookups"}


def test_loading_the_tasks_connects_the_pool_to_each_worker_process() -> None:
    """The worker imports its tasks before it forks: that alone must wire the per-process pool.

    Checked in a fresh interpreter, since this test process imports worker.database.pool anyway.
    """
    code = (
        "from worker.celery_app import app; app.loader.import_default_modules(); "
        "from celery.signals import worker_process_init as s; "
        "names = [getattr(r(), '__name__', '') for _, r in s.receivers]; "
        "raise SystemExit(0 if '_open_in_child' in names else 1)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.usefixtures("eager")
@pytest.mark.parametrize(
    ("name", "args", "kwargs", "code"),
    [
        ("zipcodes.lookup", (), {}, "ZIPCODE_NOT_VALID"),  # missing argument
        ("zipcodes.lookup", (9000, 9001), {}, "ZIPCODE_NOT_VALID"),  # one too many
        ("zipcodes.lookup", (), {"zip": 9000}, "ZIPCODE_NOT_VALID"),  # unknown keyword
        ("zipcodes.by_risk_factor", (), {}, "RISK_FACTOR_NOT_VALID"),
        ("index.latest", (1, 2), {}, "WRONG_YEAR"),
        ("batch.score_chunk", (), {}, "BAD_INPUT_FILE"),
        ("health.ping", ("1; SELECT pg_sleep(5)",), {}, "BACKEND_UNAVAILABLE"),  # takes none
    ],
)
def test_a_message_that_does_not_fit_the_task_is_refused_once(
    name: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    code: str,
    store: DictZipcodeStore,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tasks.logger, "disabled", False)  # Celery's set-up may disable it
    caplog.set_level(logging.WARNING, logger=tasks.logger.name)
    result = app.tasks[name].apply(args=args, kwargs=kwargs, task_id="poison-1")
    assert result.state == "SUCCESS"  # acknowledged with an answer: never retried
    assert result.get()["error"]["code"] == code
    assert store.queries == 0
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1
    assert "task_id=poison-1" in refusals[0].getMessage()


def test_every_zipscore_task_is_guarded() -> None:
    """health.ping was not: a ping with an argument raised TypeError in Celery's tracer."""
    app.loader.import_default_modules()
    ours = {name: task for name, task in app.tasks.items() if task.run.__module__ in TASK_MODULES}
    assert "health.ping" in ours
    assert {name for name, task in ours.items() if not isinstance(task, tasks.GuardedTask)} == set()


@pytest.mark.usefixtures("eager")
def test_an_oversized_message_is_refused_before_it_is_parsed(store: DictZipcodeStore) -> None:
    answer = run("zipcodes.lookup", "9" * (tasks.MAX_MESSAGE_BYTES + 1))
    assert answer["error"]["code"] == "ZIPCODE_NOT_VALID"
    assert "over the 16384-byte limit" in answer["error"]["message"]
    assert store.queries == 0


def test_the_size_guard_counts_the_encoded_arguments() -> None:
    def one(value: object) -> None: ...

    assert tasks.refusal(one, ("x" * 90,), {}, limit=100) is None
    assert tasks.refusal(one, ("x" * 100,), {}, limit=100) is not None
    assert tasks.refusal(one, (), {"value": 1}, limit=100) is None
