"""Batch jobs end to end in-process: eager tasks, fakeredis, the risk table as a dict."""

from __future__ import annotations

import csv
import io
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from click.testing import CliRunner

from producer.batch.progress import Reporter
from producer.batch.runner import BatchRunner, BatchSummary
from producer.cli import main as cli
from producer.client import Client
from tests.support.fakes import DictZipcodeStore
from worker.batch import chunks
from worker.celery_app import app
from worker.contract import batch_store as batch_store_module
from worker.contract.batch_store import BatchStore
from worker.contract.errors import ErrorCode, ZipscoreError
from worker.contract.result_cache import ResultCache
from worker.contract.settings import Settings
from worker.lookups.risk_table import Rule

Sent = list[tuple[str, tuple[Any, ...]]]
ZIPCODES = ["9000", "1501", "abc", "9170", "", "999", "1000", "1315", " 9240"]
EXPECTED = {
    "9000": ("B", "ok"),
    "1501": ("", "unknown"),
    "abc": ("", "invalid"),
    "9170": ("A", "ok"),
    "": ("", "invalid"),
    "999": ("", "invalid"),
    "1000": ("C", "ok"),
    "1315": ("B", "ok"),
    " 9240": ("A", "ok"),
}


def portfolio(path: Path, rows: int, newline: str = "\n", multiline: bool = True) -> Path:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator=newline)
        writer.writerow(["policy", "zipcode", "note"])
        for i in range(rows):
            writer.writerow(
                [f"P{i}", ZIPCODES[i % len(ZIPCODES)], "multi\nline" if multiline and i % 7 else ""]
            )
    return path


def check_output(path: Path, rows: int) -> None:
    """Every input row once, in order, with its expected factor and status."""
    with path.open(newline="", encoding="utf-8") as f:
        scored = list(csv.reader(f))
    assert scored[0] == ["policy", "zipcode", "note", "risk_factor", "status", "error"]
    assert [row[0] for row in scored[1:]] == [f"P{i}" for i in range(rows)]
    for row in scored[1:]:
        assert (row[3], row[4]) == EXPECTED[row[1]], row


def settings(**overrides: Any) -> Settings:
    return Settings(_env_file=None, **overrides)  # type: ignore[call-arg]


@pytest.fixture
def client(cache: ResultCache, batch_store: BatchStore) -> Client:
    return Client(
        settings(batch_chunk_deadline_seconds=0.3, batch_poll_seconds=0.01),
        cache=cache,
        batch_store=batch_store,
        timeout=1.0,
    )


def chunk_sends(sent: Sent) -> list[int]:
    return [args[0]["chunk"] for name, args in sent if name == "batch.score_chunk"]


def job_keys(batch_store: BatchStore) -> list[bytes]:
    return sorted(batch_store.redis.scan_iter(match="unit:batch:*"))


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


class Interrupt(Exception):
    pass


def interrupting_after(rows: int) -> Callable[[str, int], Reporter]:
    class Stopper(Reporter):
        def update(self, done: int) -> None:
            if done >= rows:
                raise Interrupt

    return lambda job, total: Stopper(job, total, None)


def test_resume_continues_from_the_recorded_offsets_without_rescoring(
    client: Client, eager: Sent, tmp_path: Path, batch_store: BatchStore
) -> None:
    source = portfolio(tmp_path / "in.csv", 90, multiline=False)
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


def only_job(batch_store: BatchStore) -> str:
    """The id of the one job in the store."""
    keys = [k for k in batch_store.redis.scan_iter(match="unit:batch:job:*") if b":lease" not in k]
    assert len(keys) == 1
    name: str = keys[0].decode()
    return name.rsplit(":", 1)[1]


def test_two_producers_resuming_one_job_only_one_runs_it(
    eager: Sent,
    cache: ResultCache,
    batch_store: BatchStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first resume pins the table for longer than the lease: the lease is kept meanwhile."""
    client = Client(
        settings(batch_lease_seconds=0.5, batch_poll_seconds=0.01),
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


def score_40_rows_reporting_to(reporter: type[Reporter], client: Client, tmp_path: Path) -> None:
    """Score 40 one-line rows in chunks of 5, progress going to a `reporter` of the test's."""
    client.score_file(
        portfolio(tmp_path / "in.csv", 40, multiline=False),
        tmp_path / "out.csv",
        chunk_size=5,
        progress=lambda job, total: reporter(job, total, None),
    )


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


def test_leases_are_renewed_and_released_only_by_their_holder(batch_store: BatchStore) -> None:
    job = "0123456789abcdef"
    batch_store.create_job(job, {"rows": 0})
    assert batch_store.take_lease(job, "a", 10)
    assert not batch_store.take_lease(job, "b", 10)
    assert not batch_store.renew_lease(job, "b", 100)
    assert not batch_store.release_lease(job, "b")
    assert batch_store.lease_holder(job) == "a"
    assert batch_store.redis.pttl(batch_store.lease_key(job)) <= 10_000
    assert batch_store.renew_lease(job, "a", 100)
    assert batch_store.redis.pttl(batch_store.lease_key(job)) > 10_000
    assert not batch_store.update_job(job, {"rows": 1}, owner="b")
    assert batch_store.update_job(job, {"rows": 1}, owner="a")
    assert batch_store.release_lease(job, "a")
    assert batch_store.lease_holder(job) is None
    assert batch_store.take_lease(job, "b", 10)


def test_a_lease_taken_over_between_check_and_renewal_is_not_extended(
    batch_store: BatchStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The holder's check reads its own token, then the lease expires and another takes it."""
    job = "0123456789abcdef"
    key = batch_store.lease_key(job)
    assert batch_store.take_lease(job, "a", 10)
    holds = batch_store_module._holds
    stale_reads: list[bool] = []

    def check_then_lose_it(raw: Any, owner: str) -> bool:
        answer = holds(raw, owner)
        if not stale_reads:
            stale_reads.append(answer)
            batch_store.redis.set(key, "b", px=5_000)  # a's lease ran out; b took it
        return answer

    monkeypatch.setattr(batch_store_module, "_holds", check_then_lose_it)
    assert not batch_store.renew_lease(job, "a", 100)
    assert stale_reads == [True]  # the first check was stale; the write did not happen
    assert batch_store.lease_holder(job) == "b"
    assert batch_store.redis.pttl(key) <= 5_000


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


def test_updates_never_create_a_job(batch_store: BatchStore) -> None:
    assert not batch_store.update_job("0123456789abcdef", {"state": "interrupted"})
    assert batch_store.get_job("0123456789abcdef") is None
    batch_store.create_job("0123456789abcdef", {"state": "running"})
    assert batch_store.update_job("0123456789abcdef", {"state": "interrupted"})
    assert batch_store.get_job("0123456789abcdef") == {"state": "interrupted"}


@pytest.mark.usefixtures("eager")
def test_cli_status_of_an_incomplete_record_is_an_unknown_job(
    runner: CliRunner, batch_store: BatchStore
) -> None:
    batch_store.create_job("0123456789abcdef", {"state": "interrupted"})
    done = runner.invoke(cli.cli, ["job", "status", "0123456789abcdef"])
    assert done.exit_code == 2
    assert done.stderr.startswith("zipscore: NOT_FOUND: no batch job")


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
    monkeypatch.setattr("producer.batch.runner.STATE_CHECK_AFTER", 0.0)
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


def test_a_redelivered_chunk_after_it_was_written_is_not_scored_again(
    batch_store: BatchStore, store: DictZipcodeStore, eager: Sent
) -> None:
    version = chunks.pin_table(store, batch_store, None)["version"]
    message = {"job": "abcdef0123456789", "chunk": 0, "version": version}
    message |= {"column": 0, "columns": 1, "newline": "\n"}
    batch_store.put_input("abcdef0123456789", 0, b"9000\n")
    batch_store.create_job("abcdef0123456789", {"chunks_done": 0})
    assert chunks.score_message(batch_store, message)["rows"] == 1
    batch_store.update_job("abcdef0123456789", {"chunks_done": 1}, written_chunk=0)
    assert chunks.score_message(batch_store, message) == {"chunk": 0, "skipped": True}
    assert not batch_store.has_chunk("abcdef0123456789", 0)


GOOD_MESSAGE = {"job": "abcdef0123", "chunk": 0, "version": 1, "column": 0, "columns": 1}
GOOD_MESSAGE |= {"newline": "\n"}


@pytest.mark.parametrize(
    "message",
    [
        None,
        "text",
        {"job": "../etc", "chunk": 0, "version": 1, "column": 0, "columns": 1, "newline": "\n"},
        {
            "job": "abcdef0123",
            "chunk": -1,
            "version": 1,
            "column": 0,
            "columns": 1,
            "newline": "\n",
        },
        {"job": "abcdef0123", "chunk": 0, "version": 1, "column": 3, "columns": 1, "newline": "\n"},
        {"job": "abcdef0123", "chunk": 0, "version": 1, "column": 0, "columns": 1, "newline": "\r"},
        *(
            {**GOOD_MESSAGE, field: value}
            for field in ("chunk", "version", "column", "columns")
            for value in (True, False, "1", 1.0, None)
        ),
    ],
)
@pytest.mark.usefixtures("eager")
def test_bad_chunk_messages_get_an_error_envelope(message: object) -> None:
    answer = app.tasks["batch.score_chunk"].apply(args=[message]).get()
    assert answer["error"]["code"] == "BAD_INPUT_FILE"


@pytest.mark.parametrize(
    "version",
    [
        *(True, False, -1, "1", 1.0, [1], {"version": 1}, "latest"),
        *(pytest.param(2**63, id="2**63"), pytest.param(10**300, id="10**300")),
    ],
)
def test_pin_table_refuses_anything_but_a_version_or_null(
    version: object, store: DictZipcodeStore, eager: Sent
) -> None:
    answer = app.tasks["batch.pin_table"].apply(args=[version]).get()
    assert answer["error"]["code"] == "BAD_INPUT_FILE"
    assert "table version" in answer["error"]["message"]
    assert store.queries == 0  # a number beyond bigint used to read the whole table first


@pytest.mark.usefixtures("eager")
def test_a_chunk_message_with_a_version_beyond_bigint_is_refused() -> None:
    message = {**GOOD_MESSAGE, "version": 2**63}
    answer = app.tasks["batch.score_chunk"].apply(args=[message]).get()
    assert answer["error"]["code"] == "BAD_INPUT_FILE"


@pytest.mark.usefixtures("eager")
def test_pin_table_takes_null_or_a_version() -> None:
    pinned = app.tasks["batch.pin_table"].apply(args=[None]).get()
    assert app.tasks["batch.pin_table"].apply(args=[pinned["version"]]).get() == pinned
    assert app.tasks["batch.pin_table"].apply().get() == pinned


def test_a_resumed_job_whose_table_version_is_gone_is_refused(
    batch_store: BatchStore, store: DictZipcodeStore, eager: Sent
) -> None:
    old = chunks.pin_table(store, batch_store, None)["version"]
    batch_store.redis.delete(batch_store.table_key(old))
    assert chunks.pin_table(store, batch_store, old) == {"version": old}  # same version: re-pinned
    batch_store.redis.delete(batch_store.table_key(old))
    store.load([Rule(1000, 1000, "A")])
    with pytest.raises(ZipscoreError) as caught:
        chunks.pin_table(store, batch_store, old)
    assert "expired" in caught.value.message


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


# -- the CLI ---------------------------------------------------------------------------------


@pytest.fixture
def runner(client: Client, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setattr(cli, "make_client", lambda: client)
    return CliRunner()


@pytest.mark.usefixtures("eager")
def test_cli_score_json_and_job_status(runner: CliRunner, tmp_path: Path) -> None:
    import json

    source = portfolio(tmp_path / "in.csv", 12)
    done = runner.invoke(cli.cli, ["score", str(source), "-o", str(tmp_path / "o.csv"), "--json"])
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert set(summary) == {
        "job_id", "rows", "ok", "unknown", "invalid", "seconds", "rows_per_second", "output",
    }  # fmt: skip
    assert summary["rows"] == 12
    assert "rows" in done.stderr  # the plain progress line (not a terminal)
    status = runner.invoke(cli.cli, ["job", "status", summary["job_id"], "--json"])
    assert json.loads(status.stdout)["state"] == "done"
    human = runner.invoke(cli.cli, ["job", "status", summary["job_id"]])
    assert human.stdout.startswith(f"job {summary['job_id']}: done, 12 rows")


@pytest.mark.usefixtures("eager")
def test_cli_refuses_a_bad_file_with_exit_2_and_one_line(runner: CliRunner, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(b"\x00\x01binary")
    done = runner.invoke(cli.cli, ["score", str(source), "-o", str(tmp_path / "o.csv")])
    assert done.exit_code == 2
    assert done.stderr.startswith("zipscore: BAD_INPUT_FILE: ")
    assert done.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "args",
    [["score"], ["score", "in.csv"], ["score", "in.csv", "-o", "o.csv", "--resume", "ab12cd34"]],
)
def test_cli_score_usage_errors(runner: CliRunner, args: list[str]) -> None:
    done = runner.invoke(cli.cli, args)
    assert done.exit_code == 2


def test_runner_progress_reporter_writes_plain_lines() -> None:
    stream = io.StringIO()
    with Reporter("abc", 10, stream, every=0.0) as reporter:
        reporter.update(5)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("zipscore: job abc: 5 rows of 10 (50%)")
    assert len(lines) == 2


def test_a_progress_line_of_a_file_without_rows_shows_no_share() -> None:
    """A header-only file has 0 lines: its last line divided by 0 and crashed the CLI."""
    stream = io.StringIO()
    with Reporter("abc", 0, stream):
        pass
    assert stream.getvalue().startswith("zipscore: job abc: 0 rows, ")


def test_batch_runner_needs_no_database_driver() -> None:
    assert BatchRunner.__module__ == "producer.batch.runner"
