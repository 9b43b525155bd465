"""The worker's chunk tasks (worker/batch/chunks.py): messages, pinned tables, redelivery."""

from __future__ import annotations

import pytest

from tests.support.batch_jobs import (
    GOOD_MESSAGE,
    Sent,
)
from tests.support.fakes import DictZipcodeStore
from worker.batch import chunks
from worker.celery_app import app
from worker.contract.batch_store import BatchStore
from worker.contract.errors import ZipscoreError
from worker.lookups.risk_table import Rule


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


def test_a_new_job_on_a_version_already_pinned_reads_no_rows(
    batch_store: BatchStore, store: DictZipcodeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first job of a version copies its rows to Redis; the next ones only keep the copy
    alive (one version query), until a reload makes a new version."""
    snapshots: list[int] = []
    snapshot = store.snapshot

    def counted() -> tuple[int, dict[int, str]]:
        snapshots.append(store.version)
        return snapshot()

    monkeypatch.setattr(store, "snapshot", counted)
    first = chunks.pin_table(store, batch_store, None)["version"]
    ttl = batch_store.redis.ttl(batch_store.table_key(first))
    batch_store.redis.expire(batch_store.table_key(first), 5)
    assert chunks.pin_table(store, batch_store, None) == {"version": first}
    assert batch_store.redis.ttl(batch_store.table_key(first)) == ttl  # kept alive
    store.load([Rule(1000, 1000, "A")])
    assert chunks.pin_table(store, batch_store, None) == {"version": first + 1}
    assert snapshots == [first, first + 1]
