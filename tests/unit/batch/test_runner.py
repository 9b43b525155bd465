"""Batch jobs end to end in-process (producer/batch/runner.py): eager tasks, fakeredis,
the risk table as a dict; scoring in order, resuming, and what stays the same throughout.
"""

from __future__ import annotations

import csv
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fakeredis
import pytest

from producer.batch.results import BatchSummary
from producer.batch.runner import BatchRunner
from producer.client import Client
from tests.support.batch_jobs import (
    Interrupt,
    Sent,
    chunk_sends,
    interrupting_after,
    job_keys,
    only_job,
)
from tests.support.fakes import DictZipcodeStore
from tests.support.portfolios import blank_note, check_output, portfolio
from worker.batch import chunks
from worker.contract.batch_store import BatchStore
from worker.contract.errors import ErrorCode, ZipscoreError
from worker.contract.result_cache import ResultCache
from worker.contract.settings import Settings
from worker.lookups.risk_table import Rule


def test_a_file_is_scored_row_by_row_in_order(
    client: Client, eager: Sent, tmp_path: Path, batch_store: BatchStore
) -> None:
    source = portfolio(tmp_path / "in.csv", 100, newline="\r\n")
    summary = client.score_file(source, tmp_path / "out.csv", chunk_size=9)
    check_output(tmp_path / "out.csv", 100)
    assert (summary.rows, summary.ok + summary.unknown + summary.invalid) == (100, 100)
    assert (summary.unknown, summary.invalid) == (11, 33)
    assert (tmp_path / "out.csv").read_bytes().count(b"\r\n") == 101  # fields keep their "\n"
    assert sorted(set(chunk_sends(eager))) == chunk_sends(eager)
    status = client.batch_status(summary.job_id)
    assert (status.state, status.rows, status.chunks_done) == ("done", 100, status.chunks_total)
    leftovers = [k for k in job_keys(batch_store) if b":chunk:" in k or b":input:" in k]
    assert leftovers == []


def test_bom_and_header_are_kept(client: Client, eager: Sent, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(b"\xef\xbb\xbfzipcode;x\n9000;a\n")
    with pytest.raises(ZipscoreError):  # ';' is not the delimiter: no such column
        client.score_file(source, tmp_path / "out.csv")
    source.write_bytes(b"\xef\xbb\xbfzipcode\n9000\n")
    client.score_file(source, tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_bytes() == (
        b"\xef\xbb\xbfzipcode,risk_factor,status,error\n9000,B,ok,\n"
    )


def test_a_file_that_cannot_be_scored_creates_no_job(
    client: Client, eager: Sent, tmp_path: Path, batch_store: BatchStore
) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(b"id,zip\n1,9000\n")
    with pytest.raises(ZipscoreError) as caught:
        client.score_file(source, tmp_path / "out.csv")
    assert caught.value.code is ErrorCode.BAD_INPUT_FILE
    assert eager == []
    assert job_keys(batch_store) == []
    assert not (tmp_path / "out.csv").exists()


def test_redis_going_away_is_backend_unavailable(
    eager: Sent, cache: ResultCache, tmp_path: Path
) -> None:
    server = fakeredis.FakeServer()
    server.connected = False
    down = BatchStore(fakeredis.FakeRedis(server=server), "unit", 60)
    client = Client(cache=cache, batch_store=down, timeout=1.0)
    with pytest.raises(ZipscoreError) as caught:
        client.batch_status("0123456789abcdef")
    assert caught.value.code is ErrorCode.BACKEND_UNAVAILABLE


def test_stray_quotes_in_fields_neither_refuse_the_file_nor_merge_rows(
    client: Client, eager: Sent, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(
        b'policy,zipcode,note\nP0,9000,5" disk\nP1,1501,x\nP2,9170,"a\nb"\n'
        b'P3,abc,y\nP4,1000,12" rack\n'
    )
    summary = client.score_file(source, tmp_path / "out.csv", chunk_size=2)
    assert summary.rows == 5
    with (tmp_path / "out.csv").open(newline="", encoding="utf-8") as f:
        scored = list(csv.reader(f))
    assert [row[:2] + row[3:5] for row in scored[1:]] == [
        ["P0", "9000", "B", "ok"],
        ["P1", "1501", "", "unknown"],
        ["P2", "9170", "A", "ok"],
        ["P3", "abc", "", "invalid"],
        ["P4", "1000", "C", "ok"],
    ]
    assert [row[2] for row in scored[1:]] == ['5" disk', "x", "a\nb", "y", '12" rack']


def test_the_output_may_not_overwrite_the_input(
    client: Client, eager: Sent, tmp_path: Path
) -> None:
    source = portfolio(tmp_path / "in.csv", 3)
    with pytest.raises(ZipscoreError) as caught:
        client.score_file(source, source)
    assert caught.value.code is ErrorCode.BAD_INPUT_FILE
    assert eager == []


def test_a_table_reload_mid_batch_does_not_change_the_job(
    client: Client,
    eager: Sent,
    store: DictZipcodeStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sends = 0
    apply = client.app.send_task

    def reload_after_first_chunk(name: str, args: tuple[Any, ...] = (), **kw: Any) -> Any:
        nonlocal sends
        result = apply(name, args=args, **kw)
        if name == "batch.score_chunk":
            sends += 1
            if sends == 2:
                store.load([Rule(1000, 9999, "A")])  # everything A from now on
        return result

    monkeypatch.setattr(client.app, "send_task", reload_after_first_chunk)
    source = portfolio(tmp_path / "in.csv", 60)
    first = client.score_file(source, tmp_path / "out.csv", chunk_size=5)
    check_output(tmp_path / "out.csv", 60)  # the old table throughout
    second = client.score_file(source, tmp_path / "again.csv", chunk_size=5)
    assert second.unknown == 0
    assert second.ok > first.ok


def test_resume_continues_from_the_recorded_offsets_without_rescoring(
    client: Client, eager: Sent, tmp_path: Path, batch_store: BatchStore
) -> None:
    source = portfolio(tmp_path / "in.csv", 90, note=blank_note)
    with pytest.raises(Interrupt):
        client.score_file(
            source, tmp_path / "out.csv", chunk_size=10, progress=interrupting_after(30)
        )
    job = batch_store.redis.scan_iter(match="unit:batch:job:*").__next__().decode()
    job_id = job.split(":")[-1]
    record = batch_store.get_job(job_id)
    assert record is not None
    assert (record["state"], record["chunks_done"], record["rows"]) == ("interrupted", "3", "30")
    # Rows go to the job's partial file; the target appears only once the job is done.
    assert not (tmp_path / "out.csv").exists()
    partial = Path(record["partial"])
    assert partial.parent == tmp_path
    assert partial.stat().st_size == int(record["output_offset"])
    sent_before = len(chunk_sends(eager))
    # The killed producer may have left bytes past the recorded offset: they are cut away.
    with partial.open("ab") as out:
        out.write(b"half a chunk,")
    summary = client.resume_batch(job_id)
    check_output(tmp_path / "out.csv", 90)
    assert summary.rows == 90
    assert not partial.exists()
    resent = chunk_sends(eager)[sent_before:]
    assert min(resent) >= 3
    # Chunks 3..5 were in flight when the producer stopped: their outputs were reused.
    assert set(resent) == set(range(3, 9)) - set(chunk_sends(eager)[:sent_before])
    assert client.resume_batch(job_id) == summary  # a done job is just reported


def test_resume_refuses_an_input_that_changed(
    client: Client, eager: Sent, tmp_path: Path, batch_store: BatchStore
) -> None:
    source = portfolio(tmp_path / "in.csv", 40)
    with pytest.raises(Interrupt):
        client.score_file(
            source, tmp_path / "out.csv", chunk_size=10, progress=interrupting_after(10)
        )
    job_id = next(batch_store.redis.scan_iter(match="unit:batch:job:*")).decode().split(":")[-1]
    portfolio(source, 41)
    with pytest.raises(ZipscoreError) as caught:
        client.resume_batch(job_id)
    assert caught.value.code is ErrorCode.BAD_INPUT_FILE
    assert "changed" in caught.value.message


def test_two_producers_resuming_one_job_only_one_runs_it(
    eager: Sent,
    cache: ResultCache,
    batch_store: BatchStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    make_settings: Callable[..., Settings],
) -> None:
    """The first resume pins the table for longer than the lease: the lease is kept meanwhile."""
    client = Client(
        make_settings(batch_lease_seconds=0.5, batch_poll_seconds=0.01),
        cache=cache,
        batch_store=batch_store,
        timeout=1.0,
    )
    source = portfolio(tmp_path / "in.csv", 40)
    with pytest.raises(Interrupt):
        client.score_file(
            source, tmp_path / "out.csv", chunk_size=5, progress=interrupting_after(10)
        )
    job_id = only_job(batch_store)
    pin = chunks.pin_table
    resume_pins: list[int] = []

    def slow_pin(store: Any, batch: BatchStore, version: int | None) -> dict[str, Any]:
        if version is not None:  # a resume: slower than the lease and the rival's patience
            resume_pins.append(version)
            time.sleep(2.0)
        return pin(store, batch, version)

    monkeypatch.setattr(chunks, "pin_table", slow_pin)
    states: list[str] = []
    update = BatchStore.update_job

    def recording(self: BatchStore, job: str, fields: Any, **kw: Any) -> Any:
        states.append(str(fields.get("state", "")))
        return update(self, job, fields, **kw)

    monkeypatch.setattr(BatchStore, "update_job", recording)
    outcomes: dict[str, object] = {}

    def resume(name: str) -> None:
        try:
            outcomes[name] = client.resume_batch(job_id)
        except ZipscoreError as exc:
            outcomes[name] = exc

    first = threading.Thread(target=resume, args=("first",))
    first.start()
    time.sleep(0.1)
    second = threading.Thread(target=resume, args=("second",))
    second.start()
    first.join(10)
    second.join(10)
    assert len(resume_pins) == 1  # the second producer never got past the lease
    assert isinstance(outcomes["first"], BatchSummary)
    refused = outcomes["second"]
    assert isinstance(refused, ZipscoreError)
    assert refused.code is ErrorCode.TIMEOUT
    assert "being run by another producer" in refused.message
    assert "interrupted" not in states
    check_output(tmp_path / "out.csv", 40)
    assert client.batch_status(job_id).state == "done"


@pytest.mark.budget(rss_mb=25)
def test_memory_stays_flat_on_a_large_file(
    client: Client, eager: Sent, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """400,000 rows (~9 MB in, ~16 MB out) in chunks of 5,000: only a few chunks in memory."""
    source = tmp_path_factory.mktemp("big") / "in.csv"
    with source.open("w") as out:
        out.write("policy,zipcode,note\n")
        for start in range(0, 400_000, 50_000):
            out.write("".join(f"P{i},{1000 + i % 9000},x\n" for i in range(start, start + 50_000)))
    target = source.with_name("out.csv")
    summary = client.score_file(source, target, chunk_size=5_000)
    assert summary.rows == 400_000
    with target.open("rb") as f:
        assert sum(1 for _ in f) == 400_001


def test_batch_runner_needs_no_database_driver() -> None:
    assert BatchRunner.__module__ == "producer.batch.runner"
