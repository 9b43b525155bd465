"""Batch jobs on the gateway's threads: a bounded number at once, busy slots answered
with Retry-After, a job that stops midway logged as resumable."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from producer.client import Client
from producer.gateway import app as gateway
from producer.gateway.jobs import BatchLauncher
from tests.support.gateway import JOB, Sent, error, held_job_status
from worker.contract.errors import ErrorCode, ZipscoreError


def test_a_gateway_runs_a_bounded_number_of_batches(
    client: Client, index_eager: Sent, tmp_path: Path
) -> None:
    import threading

    release = threading.Event()

    def hold(source: Path, output: Path, **kwargs: Any) -> Any:
        kwargs["progress"]("0123456789abcdef", 1)
        release.wait(10)

    client.score_file = hold  # type: ignore[method-assign]
    launcher = BatchLauncher(client, max_running=1)
    app = gateway.create_app(client.settings, client=client, launcher=launcher)
    with TestClient(app) as api:
        first = api.post("/batches", content=b"zipcode\n9000\n")
        second = api.post("/batches", content=b"zipcode\n9000\n")
        uploads = sorted(p.name for p in client.settings.gateway_upload_dir.iterdir())
        release.set()
    assert first.status_code == 202
    assert error(second) == (503, "BACKEND_UNAVAILABLE")
    assert len([name for name in uploads if not name.endswith(".scored.csv")]) == 1, uploads


def test_a_job_that_stops_after_it_started_is_logged_as_resumable(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    def fail_midway(source: Path, output: Path, **kwargs: Any) -> Any:
        kwargs["progress"]("0123456789abcdef", 1)
        raise ZipscoreError(ErrorCode.TIMEOUT, "no worker")

    client.score_file = fail_midway  # type: ignore[method-assign]
    launcher = BatchLauncher(client, max_running=1)
    started = launcher.start(Path("in.csv"), Path("out.csv"), zipcode_column="zipcode")
    assert started.result(timeout=5) == "0123456789abcdef"
    deadline = time.monotonic() + 5
    while "resumable" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "batch job 0123456789abcdef stopped: TIMEOUT: no worker" in caplog.text


def test_busy_batch_slots_say_when_to_retry_on_create_and_on_resume(
    client: Client, index_eager: Sent, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    launcher = BatchLauncher(client, max_running=1)
    held = launcher.reserve()  # the one slot, taken by a batch still running
    monkeypatch.setattr(
        client, "batch_status", lambda job: held_job_status(tmp_path, "interrupted")
    )
    with TestClient(gateway.create_app(client.settings, client=client, launcher=launcher)) as api:
        created = api.post("/batches", content=b"zipcode\n9000\n")
        resumed = api.post(f"/batches/{JOB}/resume")
    held.release()
    for response in (created, resumed):
        assert error(response) == (503, "BACKEND_UNAVAILABLE")
        assert response.headers["retry-after"] == "10"
        assert "running 1 batches already" in response.json()["error"]["message"]
