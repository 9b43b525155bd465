"""Hostile values at the entry points that take them: task messages, CLI arguments and
environment settings. For any input: an answer or a contract error, never an
exception, a traceback or a hang; a refused input changes nothing.

Files have theirs in tests/unit/database/test_admin.py: risk tables through `zipscore db
load-zipcodes`, batch inputs through `zipscore score`, Statbel documents through the index
refresh (and bad risk tables against the real Postgres load in
tests/integration/database/test_admin.py). The parsers underneath have their own
property tests in test_risk_table.py, test_validation.py, test_batch_scoring.py and
test_health_index_document.py.
"""

from __future__ import annotations

import os
from typing import Any

import fakeredis
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producer.cli import main as cli
from tests.support.fakes import DictZipcodeStore
from worker.celery_app import app
from worker.contract.errors import ErrorCode
from worker.contract.settings import SettingsError, get_settings

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
ARGS = st.lists(JSON, max_size=3)
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
CODES = {code.value for code in ErrorCode}


@pytest.mark.usefixtures("eager")
@FUZZ
@given(name=st.sampled_from(["zipcodes.lookup", "zipcodes.by_risk_factor", "batch.score_chunk"]),
       args=ARGS)  # fmt: skip
def test_any_task_message_gets_an_answer_or_a_contract_error(
    name: str,
    args: list[Any],
    store: DictZipcodeStore,
    redis_client: fakeredis.FakeRedis,
) -> None:
    keys_before = set(redis_client.keys())
    queries_before = store.queries
    result = app.tasks[name].apply(args=args)
    assert result.state == "SUCCESS", result.traceback
    answer = result.get()
    assert isinstance(answer, dict)
    if "error" in answer:
        assert answer["error"]["code"] in CODES
        assert store.queries == queries_before  # refused before any query
        assert set(redis_client.keys()) == keys_before  # and nothing written
    else:
        assert name != "batch.score_chunk" or answer.get("skipped") is not None


@FUZZ
@given(
    command=st.sampled_from([["lookup"], ["zipcodes", "--risk-factor"], ["index", "--base-year"]]),
    value=st.text(max_size=40).filter(lambda text: "\x00" not in text),
    json_flag=st.booleans(),
)
def test_any_cli_argument_gets_an_answer_or_one_line_error(
    runner: CliRunner, command: list[str], value: str, json_flag: bool
) -> None:
    args = [*command, value, *(["--json"] if json_flag else [])]
    result = runner.invoke(cli.cli, args, standalone_mode=True)
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    assert result.exit_code in (0, 1, 2)
    assert "Traceback" not in result.output + result.stderr
    if result.exit_code != 0:
        assert result.stderr.count("\n") <= 2  # click's usage line, or our one line


SETTINGS = [
    "ZIPSCORE_DATABASE_URL", "ZIPSCORE_REDIS_URL", "ZIPSCORE_REDIS_PREFIX",
    "ZIPSCORE_LOOKUP_TIMEOUT", "ZIPSCORE_INDEX_BASE_YEARS", "ZIPSCORE_INDEX_REFRESH_CRON",
    "ZIPSCORE_VISIBILITY_TIMEOUT_SECONDS", "ZIPSCORE_BATCH_CHUNK_SIZE", "ZIPSCORE_LOG_FORMAT",
    "ZIPSCORE_STATBEL_URL", "ZIPSCORE_TASK_TIME_LIMIT",
]  # fmt: skip


@FUZZ
@given(name=st.sampled_from(SETTINGS),
       value=st.text(max_size=40).filter(lambda text: "\x00" not in text))  # fmt: skip
def test_any_environment_value_is_a_setting_or_a_readable_refusal(name: str, value: str) -> None:
    saved = os.environ.get(name)
    os.environ[name] = value
    get_settings.cache_clear()
    try:
        get_settings()
    except SettingsError as exc:
        assert str(exc).startswith("invalid configuration: ")
        assert "\n" not in str(exc)
    finally:
        if saved is None:
            del os.environ[name]
        else:
            os.environ[name] = saved
        get_settings.cache_clear()
