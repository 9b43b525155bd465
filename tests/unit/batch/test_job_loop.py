"""The job loop (producer/batch/job_loop.py): chunks lost or failed are sent again."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from producer.client import Client
from tests.support.batch_jobs import (
    Sent,
    chunk_sends,
)
from tests.support.portfolios import check_output, portfolio
from worker.contract.batch_store import BatchStore
from worker.contract.errors import ErrorCode, ZipscoreError


class LostResult:
    """A task whose message vanished with a killed worker: it never runs."""

    state = "PENDING"
    id = "lost"


class FailedResult:
    state = "FAILURE"
    id = "failed"


@pytest.mark.parametrize("lost", [LostResult(), FailedResult()], ids=["deadline", "failure"])
def test_chunks_that_never_complete_are_sent_again(
    client: Client,
    eager: Sent,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    lost: object,
) -> None:
    apply = client.app.send_task
    dropped: list[int] = []

    def lose_chunk_2_once(name: str, args: tuple[Any, ...] = (), **kw: Any) -> Any:
        if name == "batch.score_chunk" and args[0]["chunk"] == 2 and not dropped:
            dropped.append(2)
            eager.append((name, tuple(args)))
            return lost
        return apply(name, args=args, **kw)

    monkeypatch.setattr(client.app, "send_task", lose_chunk_2_once)
    monkeypatch.setattr("producer.batch.job_loop.STATE_CHECK_AFTER", 0.0)
    summary = client.score_file(
        portfolio(tmp_path / "in.csv", 50), tmp_path / "out.csv", chunk_size=5
    )
    check_output(tmp_path / "out.csv", 50)
    assert chunk_sends(eager).count(2) == 2
    assert client.batch_status(summary.job_id).resubmitted == 1


def test_a_chunk_that_keeps_failing_stops_the_job_with_a_resume_hint(
    client: Client, eager: Sent, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    apply = client.app.send_task

    def chunk_1_always_lost(name: str, args: tuple[Any, ...] = (), **kw: Any) -> Any:
        if name == "batch.score_chunk" and args[0]["chunk"] == 1:
            return LostResult()
        return apply(name, args=args, **kw)

    monkeypatch.setattr(client.app, "send_task", chunk_1_always_lost)
    with pytest.raises(ZipscoreError) as caught:
        client.score_file(portfolio(tmp_path / "in.csv", 20), tmp_path / "out.csv", chunk_size=5)
    assert caught.value.code is ErrorCode.BACKEND_UNAVAILABLE
    assert "--resume" in caught.value.message


def test_a_chunk_far_slower_than_its_peers_gets_a_backup_copy_long_before_its_deadline(
    client: Client, eager: Sent, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first send of chunk 2 vanishes (a killed worker): no failure, no answer ever."""
    apply = client.app.send_task
    dropped: list[int] = []

    def lose_chunk_2_once(name: str, args: tuple[Any, ...] = (), **kw: Any) -> Any:
        if name == "batch.score_chunk" and args[0]["chunk"] == 2 and not dropped:
            dropped.append(2)
            eager.append((name, tuple(args)))
            return LostResult()
        return apply(name, args=args, **kw)

    monkeypatch.setattr(client.app, "send_task", lose_chunk_2_once)
    monkeypatch.setattr("producer.batch.backups.BACKUP_FLOOR", 0.05)
    monkeypatch.setattr("producer.batch.job_loop.STATE_CHECK_AFTER", 3600.0)
    monkeypatch.setattr(client.settings, "batch_chunk_deadline_seconds", 3600.0)
    started = time.monotonic()
    summary = client.score_file(
        portfolio(tmp_path / "in.csv", 50), tmp_path / "out.csv", chunk_size=5
    )
    assert time.monotonic() - started < 30  # not the deadline's hour
    check_output(tmp_path / "out.csv", 50)
    assert chunk_sends(eager).count(2) == 2
    assert client.batch_status(summary.job_id).resubmitted == 1


def test_a_chunk_whose_notice_never_comes_is_written_once_its_task_succeeded(
    client: Client,
    eager: Sent,
    batch_store: BatchStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An output is read only once announced; without a notice, the task's SUCCESS (and the
    output found in Redis) is the announcement. Nothing is sent twice."""
    monkeypatch.setattr(batch_store, "wait_for_notice", lambda job, timeout: [])
    monkeypatch.setattr("producer.batch.job_loop.STATE_CHECK_AFTER", 0.0)
    reads: list[int] = []
    get_chunk = batch_store.get_chunk

    def counted(job: str, index: int) -> Any:
        reads.append(index)
        return get_chunk(job, index)

    monkeypatch.setattr(batch_store, "get_chunk", counted)
    summary = client.score_file(
        portfolio(tmp_path / "in.csv", 50), tmp_path / "out.csv", chunk_size=5
    )
    check_output(tmp_path / "out.csv", 50)
    chunks = list(range(client.batch_status(summary.job_id).chunks_total))
    assert sorted(chunk_sends(eager)) == chunks  # none sent twice
    assert reads == chunks  # each output read once, when known to be there
    assert client.batch_status(summary.job_id).resubmitted == 0
