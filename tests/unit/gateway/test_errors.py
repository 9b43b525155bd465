"""Every error in the contract's body with its status: each code, the framework's
refusals, a repeated query parameter, no traceback, Retry-After on every 503."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from producer.client import Client
from producer.gateway import app as gateway
from tests.support.gateway import error, job_keys
from worker.contract.batch_store import BatchStore
from worker.contract.errors import ErrorCode, ZipscoreError

# Every route with its path filled in, and the code a bad value of each parameter gets.
SAMPLE_PATH_VALUES = {"zipcode": "9000", "job_id": "0123456789abcdef"}
CODES = {
    "risk_factor": "RISK_FACTOR_NOT_VALID",
    "base_year": "WRONG_YEAR",
    "year": "WRONG_YEAR",
    "zipcode_column": "BAD_INPUT_FILE",
    "extra": "BAD_INPUT_FILE",
}


def routes_and_parameters(app: FastAPI) -> list[tuple[str, str, str]]:
    """(method, path, query parameter) for every operation and each of its query parameters,
    plus one it does not declare."""
    cases = []
    for route in app.routes:
        if not isinstance(route, APIRoute):
            continue
        path = route.path_format.format(**SAMPLE_PATH_VALUES)
        names = [param.name for param in route.dependant.query_params] + ["extra"]
        methods = sorted(route.methods or ())
        cases += [(method, path, name) for method in methods for name in names]
    return cases


def test_a_repeated_query_parameter_is_refused_on_every_route(
    api: TestClient, batch_store: BatchStore, tmp_path: Path
) -> None:
    """`?risk_factor=A&risk_factor=B` took the last value silently: every parameter of every
    route, given twice, is now 400 with the parameter's code (and no route runs)."""
    cases = routes_and_parameters(api.app)  # type: ignore[arg-type]
    assert {name for _, _, name in cases} == set(CODES)  # a new parameter needs its code here
    for method, path, name in cases:
        values = {"risk_factor": ["A", "B"], "base_year": ["2004", "2013"]}.get(name, ["1", "2"])
        response = api.request(method, path, params=[(name, v) for v in values], content=b"x")
        assert error(response) == (400, CODES[name]), (method, path, name, response.text)
        assert f"{name!r} is given more than once" in response.json()["error"]["message"]
    assert job_keys(batch_store) == []
    assert not (tmp_path / "uploads").exists() or list((tmp_path / "uploads").iterdir()) == []
    # Both names of the base year, once each, are not a repetition.
    assert api.get("/index", params={"base_year": "2013", "year": "2013"}).status_code == 503


# -- error mapping ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (ErrorCode.ZIPCODE_NOT_VALID, 400),
        (ErrorCode.RISK_FACTOR_NOT_VALID, 400),
        (ErrorCode.WRONG_YEAR, 400),
        (ErrorCode.BAD_INPUT_FILE, 400),
        (ErrorCode.USAGE, 400),
        (ErrorCode.UNAUTHORIZED, 401),
        (ErrorCode.NOT_FOUND, 404),
        (ErrorCode.METHOD_NOT_ALLOWED, 405),
        (ErrorCode.CONFLICT, 409),
        (ErrorCode.RATE_LIMITED, 429),
        (ErrorCode.INDEX_UNAVAILABLE, 503),
        (ErrorCode.BACKEND_UNAVAILABLE, 503),
        (ErrorCode.TIMEOUT, 504),
    ],
)
def test_every_code_has_its_status(
    api: TestClient, client: Client, monkeypatch: pytest.MonkeyPatch, code: ErrorCode, status: int
) -> None:
    def refuse(_: object, **__: object) -> None:
        raise ZipscoreError(code, "the message")

    monkeypatch.setattr(client, "lookup", refuse)
    response = api.get("/zipcodes/9000")
    assert error(response) == (status, code.value)
    assert response.json()["error"]["message"] == "the message"


def test_no_traceback_reaches_a_client(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(_: object, **__: object) -> None:
        raise RuntimeError("secret dsn postgresql://u:pw@db")

    monkeypatch.setattr(client, "lookup", crash)
    app = gateway.create_app(client.settings, client=client)
    with TestClient(app, raise_server_exceptions=False) as api:
        response = api.get("/zipcodes/9000")
    assert error(response) == (500, "BACKEND_UNAVAILABLE")
    assert "pw" not in response.text
    assert "Traceback" not in response.text


def test_unknown_routes_and_methods_answer_in_the_contract_shape(api: TestClient) -> None:
    assert error(api.get("/nowhere")) == (404, "NOT_FOUND")
    wrong_method = api.delete("/zipcodes/9000")
    assert error(wrong_method) == (405, "METHOD_NOT_ALLOWED")
    assert wrong_method.headers["allow"] == "GET, HEAD"
    assert error(api.get("/batches")) == (405, "METHOD_NOT_ALLOWED")


# -- Retry-After on every 503 -----------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "seconds"), [(ErrorCode.BACKEND_UNAVAILABLE, "5"), (ErrorCode.INDEX_UNAVAILABLE, "60")]
)
def test_a_503_from_the_backend_says_when_to_retry(
    api: TestClient,
    client: Client,
    monkeypatch: pytest.MonkeyPatch,
    code: ErrorCode,
    seconds: str,
) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise ZipscoreError(code, "down")

    monkeypatch.setattr(client, "lookup", refuse)
    response = api.get("/zipcodes/9000")
    assert error(response) == (503, code.value)
    assert response.headers["retry-after"] == seconds
