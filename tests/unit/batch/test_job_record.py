"""Job records and ids (producer/batch/job_record.py): unknown, expired and incomplete."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from producer.batch.progress import Reporter
from producer.cli import main as cli
from producer.client import Client
from tests.support.batch_jobs import (
    GOOD_MESSAGE,
    Sent,
    score_40_rows_reporting_to,
)
from worker.celery_app import app
from worker.contract.batch_store import BatchStore
from worker.contract.errors import ErrorCode, ZipscoreError


@pytest.mark.parametrize("job_id", ["nope", "0123456789abcdef"])
def test_unknown_jobs_are_refused(client: Client, eager: Sent, job_id: str) -> None:
    for call in (client.batch_status, client.resume_batch):
        with pytest.raises(ZipscoreError) as caught:
            call(job_id)
        assert caught.value.code is ErrorCode.NOT_FOUND


@pytest.mark.parametrize("job_id", ["0123456789abcdef\n", "0123456789abcdef\r\n", " 0123456789"])
def test_a_job_id_must_be_the_whole_text(
    client: Client, eager: Sent, batch_store: BatchStore, job_id: str
) -> None:
    batch_store.create_job(job_id.strip(), {"state": "done"})  # so only the id check can refuse
    for call in (client.batch_status, client.resume_batch):
        with pytest.raises(ZipscoreError) as caught:
            call(job_id)
        assert caught.value.code is ErrorCode.NOT_FOUND
        assert caught.value.message.startswith("not a job id")
    message = {**GOOD_MESSAGE, "job": job_id}
    assert app.tasks["batch.score_chunk"].apply(args=[message]).get()["error"]["code"] == (
        "BAD_INPUT_FILE"
    )


def test_a_job_record_that_expired_mid_run_is_not_recreated_and_reads_as_unknown(
    client: Client, eager: Sent, tmp_path: Path, batch_store: BatchStore
) -> None:
    class ExpiresAfter10Rows(Reporter):
        def update(self, rows: int) -> None:
            if rows >= 10:
                batch_store.redis.delete(batch_store.job_key(self.job))  # its TTL ran out

    with pytest.raises(ZipscoreError) as caught:
        score_40_rows_reporting_to(ExpiresAfter10Rows, client, tmp_path)
    assert "lost from Redis" in caught.value.message
    assert "without --resume" in caught.value.message  # no resume can find the job
    keys = list(batch_store.redis.scan_iter(match="unit:batch:job:*"))
    assert keys == []  # neither progress nor `interrupted` recreated a partial record
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]  # nor kept its partial


@pytest.mark.parametrize("record", [{"state": "interrupted"}, {"state": "running", "rows": "3"}])
def test_an_incomplete_job_record_is_an_unknown_job(
    client: Client, eager: Sent, batch_store: BatchStore, record: dict[str, str]
) -> None:
    batch_store.create_job("0123456789abcdef", record)
    for call in (client.batch_status, client.resume_batch):
        with pytest.raises(ZipscoreError) as caught:
            call("0123456789abcdef")
        assert caught.value.code is ErrorCode.NOT_FOUND
        assert caught.value.message.startswith("no batch job 0123456789abcdef")


@pytest.mark.usefixtures("eager")
def test_cli_status_of_an_incomplete_record_is_an_unknown_job(
    runner: CliRunner, batch_store: BatchStore
) -> None:
    batch_store.create_job("0123456789abcdef", {"state": "interrupted"})
    done = runner.invoke(cli.cli, ["job", "status", "0123456789abcdef"])
    assert done.exit_code == 2
    assert done.stderr.startswith("zipscore: NOT_FOUND: no batch job")
