"""SQL injection at every parameter that comes from outside reaches no SQL.

Given the sample risk table and a health index history in the run's Postgres, when an
injection (stacked statements, a quote trick, dollar quoting, very long text, nested JSON,
numbers no column can hold) is sent at a parameter: then the contract error comes back,
no statement touched zipcodes, risk_table_meta, health_index or index_refreshes and none
failed in the database (tests/support/table_activity.py, read after every connection published its
counters), and every table holds the rows it held.

The parameters: every argument of every task message, sent raw through the real queue to
the session's embedded worker (the checks of the client skipped); every CLI argument and
option that carries a value (`index --base-year` among them); the HTTP gateway's path and
query parameters. Two controls show the measurement can fail: a statement the worker just
ran shows at once, and so does a value that reached Postgres and was refused there.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
import redis
from click.testing import CliRunner
from fastapi.testclient import TestClient
from pytest_httpserver import HTTPServer

from producer.cli import main as cli
from producer.client import Client
from producer.gateway import app as gateway
from tests.support.statbel_documents import fixture_body
from tests.support.statbel_server import serve
from tests.support.table_activity import activity, row_counts
from worker.batch.chunks import MAX_TABLE_VERSION
from worker.celery_app import app
from worker.contract.errors import ErrorCode
from worker.contract.settings import get_settings
from worker.database import pool as db

pytestmark = pytest.mark.usefixtures("celery_worker")
ANSWER_TIMEOUT = 15.0

STRINGS = {
    "drop-table": "2004; DROP TABLE health_index",
    "quote-or": "1' OR '1'='1",
    "dollar-quote": "$$; SELECT pg_sleep(5)$$",
    "stacked-delete": "9000); DELETE FROM zipcodes; --",
    "update-meta": "A'; UPDATE risk_table_meta SET version = 0; --",
    "long": "1' OR '1'='1; " * 1_000,  # 14 kB: under the message limit, the task checks it
    "oversized": "2004; DROP TABLE health_index " * 4_000,  # 120 kB: over the limit
}
PAYLOADS: dict[str, object] = {
    **STRINGS,
    "nested": {"base_year": 2004, "$where": "1=1", "or": ["'; DROP TABLE zipcodes; --"]},
    "deep": json.loads("[" * 64 + "\"1' OR '1'='1\"" + "]" * 64),
    "year-and-sql": [2004, "OR 1=1"],
    "negative": -1,
    "fraction": 2004.5,
    "beyond-bigint": 2**63,
    "huge-number": 10**300,
}


def chunk_message(**field: object) -> dict[str, object]:
    """A well-formed `batch.score_chunk` message, with `field` replaced."""
    return {
        "job": "0123456789abcdef",
        "chunk": 0,
        "version": 1,
        "column": 0,
        "columns": 2,
        "newline": "\n",
        **field,
    }


def is_index(value: object) -> bool:
    return type(value) is int and value >= 0


def is_version(value: object) -> bool:
    return type(value) is int and 0 <= value <= MAX_TABLE_VERSION


@dataclass(frozen=True)
class Parameter:
    """Where a payload goes in a task message, and the contract code that refuses it.

    `well_formed` tells the payloads that are valid there (e.g. any integer >= 0 as a chunk
    index: a chunk that does not exist is answered from Redis as skipped); they are not sent.
    """

    task: str
    code: ErrorCode
    message: Callable[[object], tuple[list[object], dict[str, object]]]
    well_formed: Callable[[object], bool] = lambda _: False


def positional(payload: object) -> tuple[list[object], dict[str, object]]:
    return [payload], {}


def keyword(name: str) -> Callable[[object], tuple[list[object], dict[str, object]]]:
    return lambda payload: ([], {name: payload})


def in_chunk_message(name: str) -> Callable[[object], tuple[list[object], dict[str, object]]]:
    return lambda payload: ([chunk_message(**{name: payload})], {})


CHUNK = ("batch.score_chunk", ErrorCode.BAD_INPUT_FILE)
PARAMETERS = {
    "lookup(zipcode)": Parameter("zipcodes.lookup", ErrorCode.ZIPCODE_NOT_VALID, positional),
    "by_risk_factor(risk_factor)": Parameter(
        "zipcodes.by_risk_factor", ErrorCode.RISK_FACTOR_NOT_VALID, positional
    ),
    "index.latest(base_year)": Parameter("index.latest", ErrorCode.WRONG_YEAR, positional),
    "index.latest(base_year=)": Parameter(
        "index.latest", ErrorCode.WRONG_YEAR, keyword("base_year")
    ),
    "index.refresh(if_empty)": Parameter("index.refresh", ErrorCode.INDEX_UNAVAILABLE, positional),
    "index.refresh(if_empty=)": Parameter(
        "index.refresh", ErrorCode.INDEX_UNAVAILABLE, keyword("if_empty")
    ),
    "index.refresh(retry=)": Parameter(
        "index.refresh", ErrorCode.INDEX_UNAVAILABLE, keyword("retry")
    ),
    "pin_table(version)": Parameter("batch.pin_table", ErrorCode.BAD_INPUT_FILE, positional),
    "score_chunk(message)": Parameter(*CHUNK, positional),
    "score_chunk(message.job)": Parameter(*CHUNK, in_chunk_message("job")),
    "score_chunk(message.chunk)": Parameter(*CHUNK, in_chunk_message("chunk"), is_index),
    "score_chunk(message.version)": Parameter(*CHUNK, in_chunk_message("version"), is_version),
    "score_chunk(message.column)": Parameter(*CHUNK, in_chunk_message("column")),
    "score_chunk(message.columns)": Parameter(*CHUNK, in_chunk_message("columns"), is_index),
    "score_chunk(message.newline)": Parameter(*CHUNK, in_chunk_message("newline")),
    "health.ping()": Parameter("health.ping", ErrorCode.BACKEND_UNAVAILABLE, positional),
}
MESSAGES = [
    pytest.param(parameter, payload, id=f"{where}-{name}")
    for where, parameter in PARAMETERS.items()
    for name, payload in PAYLOADS.items()
    if not parameter.well_formed(payload)
]


@pytest.fixture
def history(statbel: HTTPServer, conn: psycopg.Connection) -> HTTPServer:
    """A health index history in Postgres, and the fake Statbel still serving its document.

    A refresh that ran in spite of a refused message would fetch it (the log shows it) and
    write the refresh down (index_refreshes moves).
    """
    serve(statbel, fixture_body())
    if row_counts(conn)["health_index"] == 0:
        Client(timeout=ANSWER_TIMEOUT).refresh_index(timeout=30)
    statbel.clear_log()
    return statbel


@contextlib.contextmanager
def no_sql(conn: psycopg.Connection) -> Iterator[None]:
    """The block leaves every table as it was: no scan, no write, no failed statement."""
    rows = row_counts(conn)
    assert rows["zipcodes"] > 0
    assert rows["risk_table_meta"] == 1
    assert rows["health_index"] > 0
    before = activity(conn)
    yield
    assert activity(conn).since(before) == {}
    assert row_counts(conn) == rows


def answer_of(task: str, args: list[object], kwargs: dict[str, object]) -> Any:
    """Send a raw message through the queue and wait for what the task returned.

    A task that raised (a failure rather than a contract answer) raises here.
    """
    result = app.send_task(task, args=args, kwargs=kwargs)
    try:
        return result.get(timeout=ANSWER_TIMEOUT)
    finally:
        result.forget()


@pytest.mark.parametrize(("parameter", "payload"), MESSAGES)
def test_an_injection_in_a_task_message_is_refused_before_any_sql(
    parameter: Parameter, payload: object, conn: psycopg.Connection, history: HTTPServer
) -> None:
    args, kwargs = parameter.message(payload)
    with no_sql(conn):
        answer = answer_of(parameter.task, args, kwargs)
    assert set(answer) == {"error"}, answer
    assert answer["error"]["code"] == parameter.code.value
    assert history.log == []  # no refresh fetched the source either


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "in.csv"
    path.write_text("id,zipcode\n1,9000\n")
    return path


def table_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "table.csv"
    path.write_text(text)
    return path


COMMANDS: dict[str, tuple[ErrorCode, Callable[[str, Path, Path], list[str]]]] = {
    "lookup ZIPCODE": (ErrorCode.ZIPCODE_NOT_VALID, lambda p, _, __: ["lookup", p]),
    "zipcodes --risk-factor": (
        ErrorCode.RISK_FACTOR_NOT_VALID,
        lambda p, _, __: ["zipcodes", "--risk-factor", p],
    ),
    "index --base-year": (ErrorCode.WRONG_YEAR, lambda p, _, __: ["index", "--base-year", p]),
    "job status JOB_ID": (ErrorCode.NOT_FOUND, lambda p, _, __: ["job", "status", p]),
    "score --resume JOB_ID": (ErrorCode.NOT_FOUND, lambda p, _, __: ["score", "--resume", p]),
    "score --zipcode-column": (
        ErrorCode.BAD_INPUT_FILE,
        lambda p, source, tmp: [
            "score",
            str(source),
            "-o",
            str(tmp / "out.csv"),
            "--zipcode-column",
            p,
        ],
    ),
    "db load-zipcodes (a factor)": (
        ErrorCode.BAD_INPUT_FILE,
        lambda p, _, tmp: ["db", "load-zipcodes", str(table_file(tmp, f"1000 - 1310,{p}\n"))],
    ),
    "db load-zipcodes (a zipcode)": (
        ErrorCode.BAD_INPUT_FILE,
        lambda p, _, tmp: ["db", "load-zipcodes", str(table_file(tmp, f"{p},A\n"))],
    ),
}


@pytest.mark.parametrize("payload", STRINGS.values(), ids=STRINGS.keys())
@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_an_injection_on_the_command_line_is_refused_before_any_sql(
    command: tuple[ErrorCode, Callable[[str, Path, Path], list[str]]],
    payload: str,
    conn: psycopg.Connection,
    history: HTTPServer,
    csv_file: Path,
    tmp_path: Path,
) -> None:
    code, argv = command
    with no_sql(conn):
        done = CliRunner().invoke(cli.cli, [*argv(payload, csv_file, tmp_path), "--json"])
    assert done.exit_code == 2, done.output
    assert json.loads(done.stdout)["error"]["code"] == code.value
    assert done.stderr.startswith(f"zipscore: {code.value}: ")
    assert "Traceback" not in done.output


@pytest.fixture(scope="module")
def api(
    database: str, redis_keys: redis.Redis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    upload_dir = tmp_path_factory.mktemp("uploads")
    settings = get_settings().model_copy(update={"gateway_upload_dir": upload_dir})
    with TestClient(gateway.create_app(settings)) as test_client:
        yield test_client


ROUTES: dict[str, tuple[int, ErrorCode, Callable[[str], str]]] = {
    "/zipcodes/{zipcode}": (400, ErrorCode.ZIPCODE_NOT_VALID, lambda p: f"/zipcodes/{quote(p)}"),
    "/zipcodes?risk_factor=": (
        400,
        ErrorCode.RISK_FACTOR_NOT_VALID,
        lambda p: f"/zipcodes?risk_factor={quote(p)}",
    ),
    "/index?base_year=": (400, ErrorCode.WRONG_YEAR, lambda p: f"/index?base_year={quote(p)}"),
    "/index?year=": (400, ErrorCode.WRONG_YEAR, lambda p: f"/index?year={quote(p)}"),
    "/batches/{job_id}": (404, ErrorCode.NOT_FOUND, lambda p: f"/batches/{quote(p)}"),
}


# httpx refuses URLs over 64 KiB before sending them: the oversized payload cannot be sent
# in a URL (the 14 kB one is, quoted to 32 kB).
IN_URLS = {name: text for name, text in STRINGS.items() if name != "oversized"}


@pytest.mark.parametrize("payload", IN_URLS.values(), ids=IN_URLS.keys())
@pytest.mark.parametrize("route", ROUTES.values(), ids=ROUTES.keys())
def test_an_injection_at_the_gateway_is_refused_before_any_sql(
    route: tuple[int, ErrorCode, Callable[[str], str]],
    payload: str,
    api: TestClient,
    conn: psycopg.Connection,
    history: HTTPServer,
) -> None:
    status, code, url = route
    with no_sql(conn):
        response = api.get(url(payload))
    assert (response.status_code, response.json()["error"]["code"]) == (status, code.value)


# The controls: the measurement sees what it is there to see.


def test_a_statement_the_worker_has_just_run_shows_at_once(
    conn: psycopg.Connection, history: HTTPServer
) -> None:
    # A listing, not a lookup: lookups read the worker process's copy of the table.
    before = activity(conn)
    answer = answer_of("zipcodes.by_risk_factor", ["A"], {})
    assert answer["count"] > 0
    moved = activity(conn).since(before)
    assert moved.get("zipcodes.idx_scan", 0) + moved.get("zipcodes.seq_scan", 0) == 1, moved
    before = activity(conn)
    assert answer_of("index.latest", [2004], {})["base_year"] == 2004
    moved = activity(conn).since(before)
    assert moved.get("health_index.idx_scan", 0) + moved.get("health_index.seq_scan", 0) >= 1


def test_a_value_that_reached_sql_and_was_refused_there_shows(
    conn: psycopg.Connection, history: HTTPServer
) -> None:
    """Bound to an integer column, the text fails its cast before any row is read: no scan,
    but a failed statement, which is what `rollbacks` counts."""
    before = activity(conn)
    with db.get_pool().connection() as worker_conn, pytest.raises(psycopg.DataError):
        worker_conn.execute(
            "SELECT risk_factor FROM zipcodes WHERE zipcode = %s", ["1000; DROP TABLE zipcodes"]
        )
    assert activity(conn).since(before) == {"rollbacks": 1}
