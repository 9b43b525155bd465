"""A job's state when it stops: failed for good, interrupted (resumable), or lost with its
record; and the contract's error line whatever went wrong.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from producer.batch.lease import LeaseKeeper
from producer.cli import main as cli
from producer.client import Client
from tests.support.batch_jobs import (
    Sent,
    after_rows,
    files_in,
    job_keys,
    only_job,
    score,
)
from tests.support.cli_results import assert_one_line_error
from tests.support.portfolios import blank_note, portfolio
from worker.batch import chunks
from worker.batch import scoring as batch_module
from worker.contract.batch_store import BatchStore
from worker.contract.errors import ErrorCode, ZipscoreError


def test_a_job_record_flushed_mid_batch_never_suggests_a_resume(
    runner: CliRunner,
    batch_store: BatchStore,
    eager: Sent,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After FLUSHDB the error said `--resume ID`, and that resume answered "no batch job"."""
    source = portfolio(tmp_path / "in.csv", 40, note=blank_note)
    flush = after_rows(5, lambda _: batch_store.redis.flushall())
    monkeypatch.setattr("producer.batch.progress.progress_for", flush)
    result = score(
        runner, str(source), "-o", str(tmp_path / "out.csv"), "--chunk-size", "5", "--json"
    )
    assert result.exit_code == 1
    assert_one_line_error(result, ErrorCode.BACKEND_UNAVAILABLE, as_json=True)
    assert "lost from Redis" in result.stderr
    assert "without --resume" in result.stderr
    assert "resume with" not in result.stderr
    assert files_in(tmp_path) == ["in.csv"]


def test_a_job_stopped_between_the_rename_and_done_is_finished_by_its_resume(
    client: Client,
    eager: Sent,
    batch_store: BatchStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Redis failed at the very last update: the output was in place, the partial file gone,
    and the job `interrupted`; its resume must not fail it for the missing partial file."""
    update = LeaseKeeper.update

    def redis_fails_at_done(self: LeaseKeeper, fields: Any, **kw: Any) -> None:
        if fields.get("state") == "done":
            raise ZipscoreError(ErrorCode.BACKEND_UNAVAILABLE, "Redis is unreachable")
        update(self, fields, **kw)

    monkeypatch.setattr(LeaseKeeper, "update", redis_fails_at_done)
    source = portfolio(tmp_path / "in.csv", 30, note=blank_note)
    with pytest.raises(ZipscoreError):
        client.score_file(source, tmp_path / "out.csv", chunk_size=7)
    job = only_job(batch_store)
    assert client.batch_status(job).state == "interrupted"
    assert files_in(tmp_path) == ["in.csv", "out.csv"]
    monkeypatch.setattr(LeaseKeeper, "update", update)
    sent = len(eager)
    assert client.resume_batch(job).rows == 30
    assert client.batch_status(job).state == "done"
    assert len(eager) == sent  # nothing scored again
    assert (tmp_path / "out.csv").read_bytes().count(b"\n") == 31


def test_a_job_whose_rows_written_differ_from_the_rows_checked_is_never_done(
    client: Client,
    eager: Sent,
    batch_store: BatchStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker that loses a row (here, a scorer that drops the last row of chunk 2)."""
    score = batch_module.score_chunk

    def loses_a_row(text: str, table: Any, **kw: Any) -> Any:
        if text.startswith("P14,"):
            text = text[: text.rindex("P")]
        return score(text, table, **kw)

    monkeypatch.setattr(chunks, "score_chunk", loses_a_row)
    monkeypatch.setattr(chunks, "score_bytes", lambda *_, **__: None)  # the exact path only
    source = portfolio(tmp_path / "in.csv", 30, note=blank_note)
    with pytest.raises(ZipscoreError) as caught:
        client.score_file(source, tmp_path / "out.csv", chunk_size=7)
    assert "wrote 29 rows of the 30 lines checked" in caught.value.message
    assert client.batch_status(only_job(batch_store)).state == "failed"
    assert files_in(tmp_path) == ["in.csv"]


def test_a_start_that_fails_to_pin_its_table_leaves_no_file_no_job_no_lock(
    client: Client,
    eager: Sent,
    batch_store: BatchStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pin = chunks.pin_table

    def unavailable(store: Any, batch: BatchStore, version: int | None) -> dict[str, Any]:
        raise ZipscoreError(ErrorCode.BACKEND_UNAVAILABLE, "Postgres is unreachable")

    monkeypatch.setattr(chunks, "pin_table", unavailable)
    source = portfolio(tmp_path / "in.csv", 10)
    with pytest.raises(ZipscoreError) as caught:
        client.score_file(source, tmp_path / "out.csv")
    assert caught.value.code is ErrorCode.BACKEND_UNAVAILABLE
    assert files_in(tmp_path) == ["in.csv"]  # the partial file created first is gone
    assert job_keys(batch_store) == []  # and the output's lock is let go
    monkeypatch.setattr(chunks, "pin_table", pin)
    assert client.score_file(source, tmp_path / "out.csv").rows == 10


def test_an_unexpected_error_still_prints_the_contract_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last line of defence printed one line on stderr and nothing on stdout, --json or
    not: a caller parsing stdout got nothing to parse."""

    def broken() -> Client:
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "make_client", broken)
    source = portfolio(tmp_path / "in.csv", 3)
    argv = ["zipscore", "score", str(source), "-o", str(tmp_path / "o.csv"), "--json"]
    monkeypatch.setattr("sys.argv", argv)
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 1
    printed = capsys.readouterr()
    assert json.loads(printed.out)["error"]["code"] == "BACKEND_UNAVAILABLE"
    assert printed.err == "zipscore: unexpected RuntimeError; see the worker logs\n"
