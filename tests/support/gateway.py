"""What the gateway's tests share: settings, the error shape, jobs, keys, the OpenAPI
document's operations and the readiness checks answered without Redis or Postgres."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import fakeredis
import httpx
import pytest
from fastapi.testclient import TestClient

from producer.batch.results import JobStatus
from producer.client import Client
from producer.gateway import app as gateway
from tests.support.settings import make_settings
from worker.contract.batch_store import BatchStore
from worker.contract.index_cache import IndexCache, utcnow
from worker.contract.settings import Settings

Sent = list[tuple[str, tuple[Any, ...]]]
KEY = "k3y-0123456789abcdef-one"
OTHER_KEY = "k3y-fedcba9876543210-two"
JOB = "0123456789abcdef"
# Where the worker asks Statbel for the health index (a local server in the tests).
STATBEL_PATH = "/bestat/api/views/health-index/result/JSON"


def gateway_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for a gateway under test: uploads in `tmp_path`, small fast chunks."""
    values: dict[str, Any] = {
        "gateway_upload_dir": tmp_path / "uploads",
        "batch_chunk_size": 4,
        "batch_poll_seconds": 0.01,
        "batch_chunk_deadline_seconds": 0.5,
        **overrides,
    }
    return make_settings(**values)


def error(response: httpx.Response) -> tuple[int, str]:
    """(status, code) of an answer in the contract's error shape (asserted)."""
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    return response.status_code, body["error"]["code"]


def auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def seed_index(index_cache: IndexCache) -> None:
    """A fresh 2004 index in the cache."""
    fetched_at = utcnow().isoformat()
    index_cache.put(
        {"base_year": 2004, "index": 135.61, "period": "2021-09", "fetched_at": fetched_at}
    )


def job_status(tmp_path: Path, state: str) -> JobStatus:
    """Job JOB in `state`, its files named in `tmp_path/uploads` (not written)."""
    return JobStatus(
        job_id=JOB,
        state=state,
        input=str(tmp_path / "uploads" / "a.csv"),
        output=str((tmp_path / "uploads" / "a.scored.csv").resolve()),
        table_version=1,
        rows=8,
        ok=8,
        unknown=0,
        invalid=0,
        chunks_done=2,
        chunks_total=5,
        lines_total=20,
        resubmitted=0,
        seconds=0.5,
    )


def held_job_status(tmp_path: Path, state: str) -> JobStatus:
    """`job_status`, with its upload and its result on disk (the gateway holds them)."""
    uploads = tmp_path / "uploads"
    uploads.mkdir(exist_ok=True)
    (uploads / "a.csv").write_text("zipcode\n9000\n")  # the upload, which a resume reads
    (uploads / "a.scored.csv").write_text("zipcode\n")  # the result, which /result serves
    return job_status(tmp_path, state)


def job_keys(batch_store: BatchStore) -> list[bytes]:
    return list(batch_store.redis.scan_iter("unit:batch:job:*"))


def wait_done(api: TestClient, job: str, seconds: float = 20) -> dict[str, Any]:
    """The job's progress once done (its thread ends within the test)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        body: dict[str, Any] = api.get(f"/batches/{job}").json()
        if body["state"] == "done":
            return body
        time.sleep(0.02)
    raise AssertionError(f"job {job} not done: {body}")


def finish(api: TestClient, job: str) -> None:
    """Wait for a job to be done, so its thread does not outlive the test."""
    deadline = time.monotonic() + 20
    while api.get(f"/batches/{job}", headers=auth()).json()["state"] != "done":
        assert time.monotonic() < deadline
        time.sleep(0.02)


# A request each operation answers with success (given a backend that does).
REQUESTS: dict[tuple[str, str], tuple[str, bytes | None]] = {
    ("GET", "/healthz"): ("/healthz", None),
    ("GET", "/readyz"): ("/readyz", None),
    ("GET", "/zipcodes/{zipcode}"): ("/zipcodes/9000", None),
    ("GET", "/zipcodes"): ("/zipcodes?risk_factor=A", None),
    ("GET", "/index"): ("/index?base_year=2004", None),
    ("POST", "/batches"): ("/batches", b"zipcode\n9000\n"),
    ("GET", "/batches/{job_id}"): (f"/batches/{JOB}", None),
    ("POST", "/batches/{job_id}/resume"): (f"/batches/{JOB}/resume", None),
    ("GET", "/batches/{job_id}/result"): (f"/batches/{JOB}/result", None),
}


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, operation) of every operation in an OpenAPI document."""
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def keyed_document() -> dict[str, Any]:
    """The OpenAPI document of a gateway with an API key configured."""
    settings = gateway_settings(Path("/nowhere"), gateway_api_keys=(KEY,))
    return gateway.create_app(settings).openapi()


def answer_pings(backend: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """Readiness checks pass: Redis answers PING, a worker `health.ping`."""
    call = backend.call

    def ping_or_call(task: str, *args: Any, **kwargs: Any) -> Any:
        if task == "health.ping":
            return {"worker": "ok", "postgres": "ok"}
        return call(task, *args, **kwargs)

    monkeypatch.setattr(backend, "call", ping_or_call)
    monkeypatch.setattr(
        "worker.contract.result_cache.redis_client", lambda url: fakeredis.FakeRedis()
    )
