"""Batches through the real queue: the session's embedded worker, real Redis and Postgres."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from producer.batch.progress import Reporter
from producer.client import Client
from tests.support.portfolios import REAL_ZIPCODES, SAMPLE, check_scored, portfolio, quoted_note
from worker.contract.result_cache import ResultCache, cache_from_settings
from worker.lookups import zipcodes
from worker.lookups.risk_table import Rule

pytestmark = pytest.mark.usefixtures("celery_worker")


@pytest.fixture
def client(real_cache: ResultCache) -> Client:
    return Client(cache=real_cache, timeout=15)


def test_a_batch_through_the_worker_row_by_row(client: Client, tmp_path: Path) -> None:
    source = portfolio(
        tmp_path / "in.csv", 3_000, zipcodes=REAL_ZIPCODES, note=quoted_note, newline="\r\n"
    )
    summary = client.score_file(source, tmp_path / "out.csv", chunk_size=250)
    check_scored(tmp_path / "out.csv", 3_000, SAMPLE)
    assert summary.rows == 3_000
    status = client.batch_status(summary.job_id)
    assert (status.state, status.chunks_done, status.resubmitted) == ("done", 22, 0)
    assert status.lines_total == 3_000 + 2_400  # 2,400 comments hold a line break


@pytest.mark.usefixtures("restore_table")
def test_a_table_reload_mid_batch_does_not_mix_versions(
    client: Client, conn: psycopg.Connection, tmp_path: Path
) -> None:
    """The table is replaced (everything C) while the batch runs: no row sees it."""
    reloaded: list[int] = []

    class ReloadHalfway(Reporter):
        def update(self, rows: int) -> None:
            if rows >= 1_000 and not reloaded:
                reloaded.append(zipcodes.load_rules(conn, [Rule(1000, 9999, "C")]))
                cache_from_settings().publish_version(reloaded[0])

    source = portfolio(
        tmp_path / "in.csv", 3_000, zipcodes=REAL_ZIPCODES, note=quoted_note, newline="\r\n"
    )
    pinned_before = zipcodes.table_version(conn)
    client.score_file(
        source,
        tmp_path / "out.csv",
        chunk_size=100,
        progress=lambda job, total: ReloadHalfway(job, total, None),
    )
    assert reloaded
    assert reloaded[0] > pinned_before
    check_scored(tmp_path / "out.csv", 3_000, SAMPLE)
    client.score_file(source, tmp_path / "after.csv", chunk_size=1_000)
    check_scored(tmp_path / "after.csv", 3_000, {str(z): "C" for z in range(1000, 10000)})
