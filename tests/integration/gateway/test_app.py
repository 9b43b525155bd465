"""The HTTP gateway over the real stack: the session's embedded worker, real Redis and
Postgres, and (for the index) a local fake Statbel (`statbel`, this folder's conftest)."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import celery.exceptions
import httpx
import psycopg
import pytest
import redis
from fastapi.testclient import TestClient
from pytest_httpserver import HTTPServer

from ops.bench.gateway_pressure import Watch, burst, queued_tasks, served
from ops.http_server import serving
from producer.client import Client
from producer.gateway import app as gateway
from tests.support.gateway import STATBEL_PATH
from tests.support.portfolios import (
    REAL_ZIPCODES,
    SAMPLE,
    check_scored,
    portfolio,
    quoted_note,
)
from tests.support.statbel_documents import fixture_body
from worker.celery_app import app
from worker.contract.index_cache import index_cache_from_settings
from worker.contract.result_cache import LOOKUP, ResultCache
from worker.contract.settings import get_settings

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
    statbel: HTTPServer,
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
    statbel.expect_request(STATBEL_PATH).respond_with_data(
        fixture_body(), content_type="application/json"
    )
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
    source = portfolio(
        tmp_path / "in.csv", 1_200, zipcodes=REAL_ZIPCODES, note=quoted_note, newline="\r\n"
    )
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
    check_scored(scored, 1_200, SAMPLE)
    header = next(csv.reader(io.StringIO(result.text)))
    assert header == ["policy", "zipcode", "note", "risk_factor", "status", "error"]


# -- a real uvicorn gateway under pressure (`zipscore serve`, a prefix no worker consumes) ----


@pytest.fixture
def lonely_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a gateway process whose Redis prefix no worker consumes."""
    prefix = f"zipscore-test-lonely-{uuid.uuid4().hex[:8]}"
    yield {**os.environ, "ZIPSCORE_REDIS_PREFIX": prefix}
    keys = get_settings().model_copy(update={"redis_prefix": prefix})
    client = redis.Redis.from_url(keys.broker)
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        client.delete(key)


async def slow_upload(port: int, body: bytes, piece: int, pause: float) -> int | None:
    """POST /batches sent `piece` bytes at a time (a raw socket, as an attacker would);
    the status as soon as the server answers, even mid-body; None if it never did."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"POST /batches HTTP/1.1\r\nHost: gw\r\nContent-Length: {len(body)}\r\n\r\n"
    writer.write(head.encode())
    answer = asyncio.ensure_future(reader.readline())
    try:
        for start in range(0, len(body), piece):
            if answer.done():
                break
            writer.write(body[start : start + piece])
            try:
                await writer.drain()
            except ConnectionError:
                break  # answered and closed before the whole body was sent
            await asyncio.sleep(pause)
        status_line = await asyncio.wait_for(answer, 20)
    except (TimeoutError, ConnectionError):
        return None
    finally:
        answer.cancel()
        writer.close()
    return int(status_line.split()[1]) if status_line else None


async def six_uploads(port: int, body: bytes) -> list[int | None]:
    """The statuses of the first four of six concurrent uploads to be answered."""
    uploads = [asyncio.ensure_future(slow_upload(port, body, 65_536, 0.02)) for _ in range(6)]
    answered = []
    for upload in asyncio.as_completed(uploads, timeout=20):
        answered.append(await upload)
        if len(answered) == 4:
            break
    for upload in uploads:  # the two holding a slot wait for a table pin no worker gives
        upload.cancel()
    await asyncio.gather(*uploads, return_exceptions=True)
    return sorted(answered, key=str)


def test_concurrent_uploads_past_the_slots_are_refused_before_a_byte_is_written(
    lonely_env: dict[str, str], tmp_path: Path
) -> None:
    """Six uploads at once, two batch slots: four are refused unread, none reaches the disk."""
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    env = {
        **lonely_env,
        "ZIPSCORE_GATEWAY_UPLOAD_DIR": str(uploads),
        "ZIPSCORE_GATEWAY_MAX_BATCHES": "2",
        "ZIPSCORE_BATCH_CHUNK_DEADLINE_SECONDS": "5",  # how long the slot holders keep them
    }
    body = b"zipcode\n" + b"9000\n" * 600_000  # 3 MB, sent over ~1 s each
    with served(env, tmp_path / "gateway.log") as base, Watch(uploads) as watch:
        statuses = asyncio.run(six_uploads(int(base.rsplit(":", 1)[1]), body))
    assert statuses == [503, 503, 503, 503], statuses
    # Only the two slot holders ever had a file: the refused four wrote nothing.
    assert len([name for name in watch.sizes if not name.endswith(".scored.csv")]) <= 2


def test_a_burst_of_lookups_with_no_worker_is_answered_within_the_timeout(
    lonely_env: dict[str, str], tmp_path: Path
) -> None:
    """100 concurrent uncached lookups, no worker: 16 wait (8 threads, 8 in line) and are
    504 at the 5 s deadline; the rest are 503 at once; the 8 tasks sent expire with it."""
    prefix = lonely_env["ZIPSCORE_REDIS_PREFIX"]
    client = redis.Redis.from_url(get_settings().broker)
    client.set(f"{prefix}:cache:risk-table-version", 10**9)  # every lookup is a miss
    env = {
        **lonely_env,
        "ZIPSCORE_LOOKUP_TIMEOUT": "5",
        "ZIPSCORE_GATEWAY_THREADS": "8",
        "ZIPSCORE_GATEWAY_MAX_WAITING": "8",
    }
    with served(env, tmp_path / "gateway.log") as base:
        answers = asyncio.run(burst(base, [f"/zipcodes/{1000 + i}" for i in range(100)]))
    statuses = sorted(status for status, _ in answers)
    assert statuses == [503] * 84 + [504] * 16
    assert max(seconds for _, seconds in answers) < 5 + 1.5  # was 10-40 s at the defaults
    # Refused on arrival, not after the others' deadline (a loaded CI box: 100 connections).
    assert max(seconds for status, seconds in answers if status == 503) < 2.5
    time.sleep(0.1)
    expired, live = queued_tasks(client, f"{prefix}:lookups")
    assert (expired, live) == (8, 0)  # a worker coming back drops all eight unrun


def test_the_worker_drops_an_expired_task_unrun(real_cache: ResultCache) -> None:
    """What makes an orphan harmless: the session's worker takes the expired message and
    marks it REVOKED without running it (the answer is never computed nor cached)."""
    cached = real_cache.key(real_cache.table_version() or 0, LOOKUP, 9001)
    real_cache._redis.delete(cached)
    past = datetime.now(UTC) - timedelta(seconds=1)
    result = app.send_task("zipcodes.lookup", args=(9001,), expires=past)
    with pytest.raises(celery.exceptions.TaskRevokedError):
        result.get(timeout=20)
    assert result.state == "REVOKED"
    assert not real_cache._redis.exists(cached)
    # The control: the same task unexpired runs, and its answer is cached.
    assert app.send_task("zipcodes.lookup", args=(9001,)).get(timeout=20)["exists"] is True
    assert real_cache._redis.exists(cached)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (needs root, as CI's container has), unmounted even on failure."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode().strip()[:200]}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_an_upload_onto_a_full_disk_is_507_and_the_disk_is_given_back(
    real_cache: ResultCache, tiny_disk: Path, tmp_path: Path
) -> None:
    """A 3 MB upload onto a 1 MiB file system: 507 with the contract body (it was 500,
    "unexpected error" and a traceback), the partial file removed: the next upload fits."""
    settings = get_settings().model_copy(update={"gateway_upload_dir": tiny_disk})
    with TestClient(gateway.create_app(settings)) as api:
        refused = api.post("/batches", content=b"zipcode\n" + b"9000\n" * 600_000)
        assert refused.status_code == 507, refused.text
        assert refused.json()["error"]["code"] == "BACKEND_UNAVAILABLE"
        assert str(tiny_disk) not in refused.text
        assert list(tiny_disk.iterdir()) == []
        source = portfolio(
            tmp_path / "in.csv", 200, zipcodes=REAL_ZIPCODES, note=quoted_note, newline="\r\n"
        )
        accepted = api.post("/batches", content=source.read_bytes())
        assert accepted.status_code == 202, accepted.text
        job = accepted.json()["job_id"]
        deadline = time.monotonic() + 60
        while api.get(f"/batches/{job}").json()["state"] != "done":
            assert time.monotonic() < deadline
            time.sleep(0.05)


# -- API keys on a real `zipscore serve` beyond loopback --------------------------------------


def test_zipscore_serve_on_every_interface_with_keys_answers_only_with_one(
    tmp_path: Path,
) -> None:
    """`--host 0.0.0.0` with a key file starts (it refuses to without keys: the unit test);
    over loopback, a lookup without the key is 401, with it the session's worker answers."""
    from ops.bench.environment import zipscore_exe
    from ops.bench.gateway_bench import free_port

    key = uuid.uuid4().hex
    key_file = tmp_path / "gateway_api_keys"
    key_file.write_text(f"{key}\n")
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("ZIPSCORE_GATEWAY_API_KEYS")
    }
    env |= {
        "ZIPSCORE_GATEWAY_API_KEYS_FILE": str(key_file),
        "ZIPSCORE_GATEWAY_UPLOAD_DIR": str(tmp_path / "uploads"),
    }
    port = free_port()
    log = tmp_path / "gateway.log"
    base = f"http://127.0.0.1:{port}"
    command = [zipscore_exe(), "serve", "--host", "0.0.0.0", "--port", str(port)]
    with serving(command, base, env, log):  # /healthz answers without a key
        refused = httpx.get(f"{base}/zipcodes/9000", timeout=10)
        wrong = httpx.get(f"{base}/zipcodes/9000", headers={"Authorization": "Bearer " + "x" * 32})
        answered = httpx.get(
            f"{base}/zipcodes/9000", headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
    assert (refused.status_code, refused.json()["error"]["code"]) == (401, "UNAUTHORIZED")
    assert refused.headers["www-authenticate"] == 'Bearer realm="zipscore"'
    assert wrong.status_code == 401
    assert answered.status_code == 200, answered.text
    assert answered.json() == {"zipcode": 9000, "risk_factor": "B", "exists": True}
    assert key not in log.read_text()
