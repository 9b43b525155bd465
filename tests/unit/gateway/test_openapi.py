"""The OpenAPI document lists exactly what each operation answers: no 422, an example for
every status, 401 and 429 only with keys, and each documented status provoked."""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi.testclient import TestClient

from producer.client import Client
from producer.gateway import app as gateway
from producer.gateway.errors import http_status
from tests.support.gateway import (
    JOB,
    REQUESTS,
    answer_pings,
    auth,
    error,
    gateway_settings,
    held_job_status,
    keyed_document,
    operations,
    seed_index,
)
from worker.contract.errors import ErrorCode, ZipscoreError
from worker.contract.index_cache import IndexCache

# -- the OpenAPI document ---------------------------------------------------------------


# A request each operation answers with success (given a backend that does).
def test_the_schema_has_no_422_and_names_every_operation(keyed: TestClient) -> None:
    for document in (keyed.get("/openapi.json").json(), gateway.create_app().openapi()):
        assert "422" not in str(document)
        assert "HTTPValidationError" not in document.get("components", {}).get("schemas", {})
        found = operations(document)
        assert {(method, path) for method, path, _ in found} == set(REQUESTS)
        names = [operation.get("operationId") for _, _, operation in found]
        assert all(names), names
        assert len(set(names)) == len(names), names
        assert {"lookupZipcode", "listZipcodes", "latestIndex", "createBatch"} <= set(names)


def test_every_answer_is_documented_with_an_example() -> None:
    for _, _, operation in operations(keyed_document()):
        for status, response in operation["responses"].items():
            (content,) = response["content"].values()
            assert "example" in content, (operation["operationId"], status)
            if status.startswith(("4", "5")) and operation["operationId"] != "readiness":
                assert content["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
                assert set(content["example"]["error"]) == {"code", "message"}


def test_401_and_429_are_documented_only_when_keys_are_configured() -> None:
    plain = {
        op["operationId"]: set(op["responses"])
        for *_, op in operations(gateway.create_app(gateway_settings(Path("/nowhere"))).openapi())
    }
    with_keys = {op["operationId"]: set(op["responses"]) for *_, op in operations(keyed_document())}
    for name, statuses in with_keys.items():
        extra = statuses - plain[name]
        expected = set() if name in {"liveness", "readiness"} else {"401"}
        if name == "createBatch":
            expected.add("429")
        assert extra == expected, name


def provoke(
    status: int,
    method: str,
    path: str,
    api: TestClient,
    backend: Client,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> httpx.Response:
    """Make the gateway answer `method path` with `status`, through what causes it."""
    url, body = REQUESTS[(method, path)]
    headers = auth()

    def fail(code: ErrorCode) -> Callable[..., Any]:
        def raising(*_: Any, **__: Any) -> Any:
            raise ZipscoreError(code, "the backend says no")

        return raising

    if status == 400:  # a query parameter given twice: refused on every route
        url += ("&" if "?" in url else "?") + "x=1&x=2"
    elif status == 401:
        headers = {}
    elif status == 404:
        pass  # the job is not in the (memory) batch store
    elif status == 409:
        monkeypatch.setattr(
            backend, "batch_status", lambda job: held_job_status(tmp_path, "running")
        )
    elif status == 413:
        body = b"zipcode\n" + b"9000\n" * 300_000  # 1.5 MB, over the 1 MB limit
    elif status == 429:
        api.request(method, url, headers=headers, content=b"not,a\nbatch\n")  # the one a minute
    elif status in {503, 504}:
        code = ErrorCode.BACKEND_UNAVAILABLE if status == 503 else ErrorCode.TIMEOUT
        for name in ("lookup", "by_risk_factor", "index", "call", "score_file", "resume_batch"):
            monkeypatch.setattr(backend, name, fail(code))
        if path.endswith("/resume"):  # an interrupted job, so a resume is tried
            monkeypatch.setattr(backend, "batch_status", lambda job: held_job_status(tmp_path, "x"))
        elif path.startswith("/batches/"):
            monkeypatch.setattr(backend, "batch_status", fail(code))
    elif status == 507:

        async def full(*_: object) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(anyio.AsyncFile, "write", full)
    response: httpx.Response = api.request(method, url, headers=headers, content=body)
    return response


DOCUMENTED = sorted(
    (int(status), method, path)
    for method, path, operation in operations(keyed_document())
    for status in operation["responses"]
    if int(status) >= 400
)


@pytest.mark.parametrize(("status", "method", "path"), DOCUMENTED)
def test_every_documented_error_status_is_answered(
    status: int,
    method: str,
    path: str,
    keyed: TestClient,
    keyed_client: Client,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    response = provoke(status, method, path, keyed, keyed_client, monkeypatch, tmp_path)
    assert response.status_code == status, response.text
    if path != "/readyz":
        code = error(response)[1]
        assert http_status(ErrorCode(code)) == status or status in {413, 507}
    if status in {429, 503}:
        assert int(response.headers["retry-after"]) > 0
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_each_operation_answers_its_documented_success(
    keyed: TestClient,
    keyed_client: Client,
    index_cache: IndexCache,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    answer_pings(keyed_client, monkeypatch)
    seed_index(index_cache)
    status = held_job_status(tmp_path, "done")
    monkeypatch.setattr(keyed_client, "batch_status", lambda job: status)
    monkeypatch.setattr(keyed_client, "resume_batch", lambda *_, **__: None)

    def started(source: Path, output: Path, **kwargs: Any) -> None:  # and done at once
        with kwargs["progress"](JOB, 1):
            pass

    monkeypatch.setattr(keyed_client, "score_file", started)
    for method, path, operation in operations(keyed.get("/openapi.json").json()):
        url, body = REQUESTS[(method, path)]
        response = keyed.request(method, url, headers=auth(), content=body)
        success = [int(s) for s in operation["responses"] if int(s) < 300]
        assert [response.status_code] == success, (path, response.text)
