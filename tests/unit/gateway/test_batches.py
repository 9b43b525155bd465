"""The batch routes in-process: uploads accepted, refused (400, 413, 507) and scored in
the background, progress, resume and the scored CSV, never a server path."""

from __future__ import annotations

import csv
import errno
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient

from producer.client import Client
from producer.gateway import app as gateway
from tests.support.gateway import Sent, error, job_keys, job_status, wait_done
from tests.support.portfolios import check_output, portfolio
from worker.contract.batch_store import BatchStore
from worker.contract.errors import ErrorCode, ZipscoreError

# -- batches ----------------------------------------------------------------------------


def test_a_batch_is_accepted_runs_in_the_background_and_its_result_streams(
    api: TestClient, tmp_path: Path
) -> None:
    source = portfolio(tmp_path / "in.csv", 30)
    accepted = api.post(
        "/batches", content=source.read_bytes(), headers={"Content-Type": "text/csv"}
    )
    assert accepted.status_code == 202
    job = accepted.json()["job_id"]
    assert accepted.headers["location"] == f"/batches/{job}"

    progress = wait_done(api, job)
    assert (progress["rows"], progress["ok"], progress["unknown"]) == (30, 16, 4)
    assert progress["chunks_done"] == progress["chunks_total"] > 1
    assert "input" not in progress
    assert "output" not in progress

    result = api.get(f"/batches/{job}/result")
    assert result.status_code == 200
    assert result.headers["content-type"].startswith("text/csv")
    scored = tmp_path / "scored.csv"
    scored.write_bytes(result.content)
    check_output(scored, 30)


def test_the_zipcode_column_is_chosen_by_query(api: TestClient) -> None:
    body = b"id;x\r\n1,9000\r\n2,1501\r\n".replace(b";", b",")
    accepted = api.post("/batches", params={"zipcode_column": "x"}, content=body)
    job = accepted.json()["job_id"]
    wait_done(api, job)
    rows = list(csv.reader(io.StringIO(api.get(f"/batches/{job}/result").text)))
    assert rows == [
        ["id", "x", "risk_factor", "status", "error"],
        ["1", "9000", "B", "ok", ""],
        ["2", "1501", "", "unknown", ""],
    ]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"policy,postcode\nP1,9000\n",
        b'zipcode,note\n9000,"open\n',
        b"zipcode\n\xff\xfe9000\n",
        b"zip\x00code\n9000\n",
    ],
)
def test_a_malformed_upload_is_400_before_any_job_exists(
    api: TestClient, batch_store: BatchStore, tmp_path: Path, body: bytes
) -> None:
    response = api.post("/batches", content=body)
    assert error(response) == (400, "BAD_INPUT_FILE")
    assert job_keys(batch_store) == []
    assert list((tmp_path / "uploads").iterdir()) == []
    assert str(tmp_path) not in response.text


def test_an_upload_over_the_limit_is_413(
    client: Client, index_eager: Sent, tmp_path: Path, batch_store: BatchStore
) -> None:
    small = client.settings.model_copy(update={"gateway_max_upload_mb": 1})
    app = gateway.create_app(small, client=client)
    big = b"zipcode\n" + b"9000\n" * 300_000
    with TestClient(app) as api:
        declared = api.post("/batches", content=big)

        def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it streams
            for start in range(0, len(big), 65_536):
                yield big[start : start + 65_536]

        streamed = api.post("/batches", content=chunked())
    assert error(declared) == (413, "BAD_INPUT_FILE")
    assert error(streamed) == (413, "BAD_INPUT_FILE")
    assert job_keys(batch_store) == []
    assert list((tmp_path / "uploads").iterdir()) == []


def test_an_upload_onto_a_full_disk_is_507_and_leaves_nothing(
    api: TestClient,
    batch_store: BatchStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The disk fills after 64 KiB: a contract answer, the partial file removed, the slot
    given back, and one log line without a traceback (it was 500 and an ENOSPC traceback)."""
    write = anyio.AsyncFile.write
    written = {"bytes": 0}

    async def fill_up(self: anyio.AsyncFile[bytes], data: bytes) -> int:
        written["bytes"] += len(data)
        if written["bytes"] > 65_536:
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "uploads"))
        return await write(self, data)

    monkeypatch.setattr(anyio.AsyncFile, "write", fill_up)
    big = b"zipcode\n" + b"9000\n" * 100_000

    def chunked() -> Iterator[bytes]:
        for start in range(0, len(big), 16_384):
            yield big[start : start + 16_384]

    response = api.post("/batches", content=chunked())
    assert error(response) == (507, "BACKEND_UNAVAILABLE")
    assert "ENOSPC" in response.json()["error"]["message"]
    assert str(tmp_path) not in response.text
    assert list((tmp_path / "uploads").iterdir()) == []
    assert job_keys(batch_store) == []
    logged = [r for r in caplog.records if r.name.startswith("producer.gateway.")]
    warnings = [r for r in logged if r.levelno >= 30]
    assert [(r.levelname, r.exc_info) for r in warnings] == [("WARNING", None)]
    monkeypatch.setattr(anyio.AsyncFile, "write", write)  # space freed: the slot is free too
    for _ in range(3):  # more than the two slots: none was kept by the refused upload
        accepted = api.post("/batches", content=b"zipcode\n9000\n")
        assert accepted.status_code == 202, accepted.text
        wait_done(api, accepted.json()["job_id"])


def test_unknown_jobs_are_404(api: TestClient) -> None:
    for path in ("/batches/0123456789abcdef", "/batches/not-a-job", "/batches/abcdef12/result"):
        assert error(api.get(path)) == (404, "NOT_FOUND")
    assert error(api.post("/batches/0123456789abcdef/resume")) == (404, "NOT_FOUND")


def test_the_result_is_409_until_the_job_is_done(
    api: TestClient, client: Client, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(client, "batch_status", lambda job: job_status(tmp_path, "running"))
    response = api.get("/batches/0123456789abcdef/result")
    assert error(response) == (409, "CONFLICT")
    assert "running (2/5 chunks)" in response.json()["error"]["message"]


def test_a_result_outside_the_upload_directory_is_never_served(
    api: TestClient, client: Client, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    elsewhere = job_status(tmp_path, "done").model_copy(update={"output": "/etc/passwd"})
    monkeypatch.setattr(client, "batch_status", lambda job: elsewhere)
    assert error(api.get("/batches/0123456789abcdef/result")) == (404, "NOT_FOUND")


def test_resume_runs_an_interrupted_job_and_refuses_a_running_one(
    api: TestClient, client: Client, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "uploads").mkdir()
    (tmp_path / "uploads" / "a.csv").write_text("zipcode\n")  # the upload; no output yet
    resumed: list[str] = []

    def resume_batch(job: str, *, progress: Any) -> Any:
        resumed.append(job)
        with progress(job, 20):
            pass
        return None

    monkeypatch.setattr(client, "resume_batch", resume_batch)
    state = {"now": "interrupted"}
    monkeypatch.setattr(client, "batch_status", lambda job: job_status(tmp_path, state["now"]))
    response = api.post("/batches/0123456789abcdef/resume")
    assert response.status_code == 202
    assert response.headers["location"] == "/batches/0123456789abcdef"
    assert resumed == ["0123456789abcdef"]

    state["now"] = "running"
    assert error(api.post("/batches/0123456789abcdef/resume")) == (409, "CONFLICT")
    state["now"] = "done"
    assert api.post("/batches/0123456789abcdef/resume").status_code == 202
    assert resumed == ["0123456789abcdef"]


def test_a_job_stopped_before_its_output_was_published_is_resumed_over_http(
    api: TestClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Regression: resume required the finished output file, which an unfinished job never
    has (it writes a partial file beside it), so every real resume answered 404."""
    from producer.batch.output import publish as real_publish

    fail_once = [True]

    def publish_fails_once(sink: Any, record: dict[str, str]) -> None:
        if fail_once.pop() if fail_once else False:
            raise ZipscoreError(ErrorCode.BACKEND_UNAVAILABLE, "disk full (drill)")
        real_publish(sink, record)

    monkeypatch.setattr("producer.batch.job_loop.publish", publish_fails_once)
    # Given a job whose rows were all scored, then stopped before its output was in place
    job = api.post("/batches", content=b"zipcode\n9000\n1501\n").json()["job_id"]
    deadline = time.monotonic() + 20
    while api.get(f"/batches/{job}").json()["state"] == "running":
        assert time.monotonic() < deadline, "the job did not stop"
        time.sleep(0.02)
    assert not list((tmp_path / "uploads").glob("*.scored.csv"))
    # When it is resumed over HTTP, then it is accepted and finishes with its output
    assert api.post(f"/batches/{job}/resume").status_code == 202
    assert wait_done(api, job)["rows"] == 2
    assert api.get(f"/batches/{job}/result").text.splitlines()[1].startswith("9000,")


@pytest.mark.timeout(20)
def test_a_resume_that_finds_the_job_already_published_answers(
    api: TestClient, client: Client, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Regression: a resume whose runner reported no progress (the job had been published
    meanwhile) left the request waiting for ever."""
    from types import SimpleNamespace

    (tmp_path / "uploads").mkdir()
    (tmp_path / "uploads" / "a.csv").write_text("zipcode\n")
    monkeypatch.setattr(
        client, "resume_batch", lambda job, *, progress: SimpleNamespace(job_id=job, rows=8)
    )
    monkeypatch.setattr(client, "batch_status", lambda job: job_status(tmp_path, "interrupted"))
    assert api.post("/batches/0123456789abcdef/resume").status_code == 202


def test_resume_never_shows_the_server_paths(
    api: TestClient, batch_store: BatchStore, tmp_path: Path
) -> None:
    """An interrupted job whose upload changed is refused on resume; the message named the
    upload by its full path on the server."""
    accepted = api.post("/batches", content=b"zipcode\n9000\n1501\n")
    job = accepted.json()["job_id"]
    wait_done(api, job)
    assert batch_store.update_job(job, {"state": "interrupted"})
    (source,) = [p for p in (tmp_path / "uploads").iterdir() if not p.name.endswith(".scored.csv")]
    with source.open("ab") as upload:
        upload.write(b"9001\n")
    response = api.post(f"/batches/{job}/resume")
    assert error(response) == (400, "BAD_INPUT_FILE")
    assert response.json()["error"]["message"].startswith("upload changed since job started")
    assert str(tmp_path) not in response.text
    assert source.name not in response.text
