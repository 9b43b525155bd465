"""The HTTP gateway over the real stack: the session's embedded worker, real Redis and
Postgres, and (for the index) the local fake Statbel of the health index tests."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from pytest_httpserver import HTTPServer

from producer import gateway
from producer.client import Client
from tests.integration.test_batch import check, portfolio
from tests.integration.test_health_index import serve, statbel  # noqa: F401  (a fixture)
from tests.statbel_documents import fixture_body
from worker.cache import ResultCache
from worker.index_cache import index_cache_from_settings
from worker.settings import get_settings

pytestmark = pytest.mark.usefixtures("celery_worker")


@pytest.fixture
def api(real_cache: ResultCache, tmp_path: Path) -> Iterator[TestClient]:
    settings = get_settings().model_copy(
        update={"gateway_upload_dir": tmp_path / "uploads", "gateway_ready_timeout_seconds": 10}
    )
    # No client given: the gateway builds its own, and its async cache reader (hits).
    with TestClient(gateway.create_app(settings)) as test_client:
        yield test_client


def test_lookups_and_listings(api: TestClient) -> None:
    assert api.get("/zipcodes/9000").json() == {"zipcode": 9000, "risk_factor": "B", "exists": True}
    assert api.get("/zipcodes/1501").json()["exists"] is False
    assert api.get("/zipcodes/999").json()["error"]["code"] == "ZIPCODE_NOT_VALID"
    listing = api.get("/zipcodes", params={"risk_factor": "A"}).json()
    assert listing["count"] == len(listing["zipcodes"]) > 0
    assert listing["zipcodes"] == sorted(listing["zipcodes"])
    injected = api.get("/zipcodes", params={"risk_factor": "A' OR '1'='1"})
    assert (injected.status_code, injected.json()["error"]["code"]) == (
        400,
        "RISK_FACTOR_NOT_VALID",
    )


def test_the_index_after_a_refresh(
    api: TestClient,
    statbel: HTTPServer,  # noqa: F811
    conn: psycopg.Connection,
) -> None:
    conn.execute("TRUNCATE health_index, index_refreshes")
    for year in get_settings().index_base_years:
        index_cache_from_settings().forget(year)
    unavailable = api.get("/index", params={"base_year": "2004"})
    assert (unavailable.status_code, unavailable.json()["error"]["code"]) == (
        503,
        "INDEX_UNAVAILABLE",
    )
    serve(statbel, fixture_body())
    Client(timeout=30).refresh_index(timeout=30)
    for params, value in (({"base_year": "2013"}, 112.29), ({"year": "1996"}, 154.29)):
        body = api.get("/index", params=params).json()
        assert (body["index"], body["period"], body["stale"]) == (value, "2021-09", False)


def test_ready_with_the_worker_and_postgres(api: TestClient) -> None:
    response = api.get("/readyz")
    assert response.json() == {
        "ready": True,
        "checks": {"redis": "ok", "worker": "ok", "postgres": "ok"},
    }
    assert response.status_code == 200


def test_a_batch_upload_polled_to_its_result_row_by_row(api: TestClient, tmp_path: Path) -> None:
    from tests.integration.test_batch import SAMPLE

    source = portfolio(tmp_path / "in.csv", 1_200)
    accepted = api.post(
        "/batches", content=source.read_bytes(), headers={"Content-Type": "text/csv"}
    )
    assert accepted.status_code == 202, accepted.text
    job = accepted.json()["job_id"]
    deadline = time.monotonic() + 60
    while (progress := api.get(accepted.headers["location"]).json())["state"] != "done":
        assert progress["state"] == "running", progress
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert progress["rows"] == 1_200
    result = api.get(f"/batches/{job}/result")
    assert result.status_code == 200
    scored = tmp_path / "scored.csv"
    scored.write_bytes(result.content)
    check(scored, 1_200, SAMPLE)
    header = next(csv.reader(io.StringIO(result.text)))
    assert header == ["id", "zipcode", "comment", "risk_factor", "status", "error"]
