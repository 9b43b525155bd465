"""The job's lease (producer/batch/lease.py): a producer that lost it writes nothing more."""

from __future__ import annotations

from pathlib import Path

import pytest

from producer.batch.progress import Reporter
from producer.client import Client
from tests.support.batch_jobs import (
    Sent,
    only_job,
    score_40_rows_reporting_to,
)
from worker.contract.batch_store import BatchStore
from worker.contract.errors import ErrorCode, ZipscoreError


def test_a_producer_that_lost_its_lease_stops_and_writes_no_state(
    client: Client, eager: Sent, tmp_path: Path, batch_store: BatchStore
) -> None:
    taken: list[dict[str, str] | None] = []

    class TakenOverAfter10Rows(Reporter):
        def update(self, rows: int) -> None:
            if rows >= 10 and not taken:  # the lease expired and another producer took it
                batch_store.redis.set(batch_store.lease_key(self.job), "another:producer")
                taken.append(batch_store.get_job(self.job))

    with pytest.raises(ZipscoreError) as caught:
        score_40_rows_reporting_to(TakenOverAfter10Rows, client, tmp_path)
    assert caught.value.code is ErrorCode.TIMEOUT
    job_id = only_job(batch_store)
    assert taken[0] is not None
    assert taken[0]["chunks_done"] == "2"
    assert batch_store.get_job(job_id) == taken[0]  # not one field written after the loss
    assert batch_store.lease_holder(job_id) == "another:producer"  # and not released either
