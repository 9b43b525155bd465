"""`zipscore score`'s resume hint when a batch stops on Redis (producer/cli/batch.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from producer.cli import main as cli
from worker.contract.errors import ErrorCode, ZipscoreError

JOB = "0123456789abcdef"


class StoppedByRedis:
    """A client whose batch starts, then loses Redis; its status read fails with `status`."""

    def __init__(self, status: ErrorCode) -> None:
        self.status = status

    def score_file(self, *_: Any, progress: Any, **__: Any) -> None:
        progress(JOB, 100)
        raise ZipscoreError(ErrorCode.BACKEND_UNAVAILABLE, "Redis is unreachable (ConnectionError)")

    def batch_status(self, job: str) -> None:
        raise ZipscoreError(self.status, "cannot read the job record")


def score_with(status: ErrorCode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(cli, "make_client", lambda: StoppedByRedis(status))
    monkeypatch.setattr("producer.batch.progress.progress_for", lambda job, total: None)
    source = tmp_path / "in.csv"
    source.write_text("id,zipcode\n1,9000\n")
    result = CliRunner().invoke(cli.cli, ["score", str(source), "-o", str(tmp_path / "o.csv")])
    assert result.exit_code == 1
    return result.stderr


def test_a_batch_stopped_while_redis_is_still_down_names_the_job_to_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The drill's producer gave up while Redis was down: no hint, and the job id was lost."""
    stderr = score_with(ErrorCode.BACKEND_UNAVAILABLE, tmp_path, monkeypatch)
    assert f"resume with: zipscore score --resume {JOB}" in stderr


def test_a_job_record_that_is_gone_is_never_offered_for_a_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stderr = score_with(ErrorCode.NOT_FOUND, tmp_path, monkeypatch)
    assert "resume with" not in stderr


def test_score_keeps_freed_heap_for_its_scans_before_it_reads_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI's process scans chunk after chunk (worker/contract/heap.py); the gateway,
    which imports the same scans, keeps glibc's defaults."""
    calls: list[str] = []
    monkeypatch.setattr(
        "worker.contract.heap.keep_freed_memory_for_reuse", lambda: calls.append("tuned")
    )
    score_with(ErrorCode.BACKEND_UNAVAILABLE, tmp_path, monkeypatch)
    assert calls == ["tuned"]
