"""A job's output file (producer/batch/output.py): its target, its lock, its partial file
and the rename that publishes it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import resource
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from producer.batch import output as batch_output
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
from worker.contract.batch_store import BatchStore
from worker.contract.errors import ErrorCode, ZipscoreError


def test_an_output_hard_linked_to_the_input_is_refused(
    client: Client, eager: Sent, batch_store: BatchStore, tmp_path: Path
) -> None:
    """A hard link has another name and the same inode: it destroyed the input, exit 0."""
    source = portfolio(tmp_path / "in.csv", 20)
    original = source.read_bytes()
    os.link(source, tmp_path / "link.csv")
    for target in (tmp_path / "link.csv", source):
        with pytest.raises(ZipscoreError) as caught:
            client.score_file(source, target)
        assert caught.value.code is ErrorCode.BAD_INPUT_FILE
        assert "overwrite the input" in caught.value.message
    assert source.read_bytes() == original
    assert (eager, job_keys(batch_store)) == ([], [])


def test_a_target_another_running_job_writes_is_refused(
    client: Client, eager: Sent, tmp_path: Path
) -> None:
    """Two runs into one output both exited 0 with an interleaved file."""
    first = portfolio(tmp_path / "first.csv", 40, note=blank_note)
    second = portfolio(tmp_path / "second.csv", 25)
    target = tmp_path / "out.csv"
    refusals: list[ZipscoreError] = []

    def second_run(_: str) -> None:
        try:
            client.score_file(second, target, chunk_size=5)
        except ZipscoreError as exc:
            refusals.append(exc)

    summary = client.score_file(first, target, chunk_size=5, progress=after_rows(5, second_run))
    assert [(e.code, "another running job" in e.message) for e in refusals] == [
        (ErrorCode.BAD_INPUT_FILE, True)
    ]
    assert summary.rows == 40
    assert target.read_bytes().count(b"\n") == 41
    assert client.score_file(second, target, chunk_size=5).rows == 25  # free once it ended


def test_a_resume_after_another_job_finished_the_target_replaces_it_whole(
    client: Client, eager: Sent, batch_store: BatchStore, tmp_path: Path
) -> None:
    """The resume cut the other job's finished file at its own offset and appended to it."""
    first = portfolio(tmp_path / "first.csv", 40, note=blank_note)
    target = tmp_path / "out.csv"

    def stop(_: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        client.score_file(first, target, chunk_size=5, progress=after_rows(10, stop))
    job = only_job(batch_store)
    other = portfolio(tmp_path / "other.csv", 3, note=blank_note)
    client.score_file(other, target)
    assert target.read_bytes().count(b"\n") == 4
    assert client.resume_batch(job).rows == 40
    lines = target.read_bytes().splitlines()
    assert [line.split(b",")[0] for line in lines[1:]] == [b"P%d" % i for i in range(40)]


def test_a_target_that_appears_only_once_every_row_is_written(
    client: Client, eager: Sent, tmp_path: Path
) -> None:
    target = tmp_path / "out.csv"
    target.write_bytes(b"yesterday's results\n")
    seen: list[bytes] = []
    source = portfolio(tmp_path / "in.csv", 30)
    client.score_file(
        source,
        target,
        chunk_size=5,
        progress=after_rows(10, lambda _: seen.append(target.read_bytes())),
    )
    assert seen == [b"yesterday's results\n"]  # mid-run: the old file, untouched
    assert target.read_bytes().count(b"P") == 30
    assert files_in(tmp_path) == ["in.csv", "out.csv"]


@pytest.mark.parametrize(
    ("output", "says"),
    [
        ("{tmp}", "a directory"),
        ("/dev/full", "not a regular file"),
        ("/dev/null", "not a regular file"),
        ("{tmp}/missing/out.csv", "no such directory"),
        ("/proc/zipscore-out.csv", "cannot create a file in /proc"),  # unwritable, even as root
    ],
)
def test_an_output_that_cannot_be_a_file_is_refused_up_front(
    runner: CliRunner,
    eager: Sent,
    batch_store: BatchStore,
    tmp_path: Path,
    output: str,
    says: str,
) -> None:
    """A directory or /dev/full gave "unexpected IsADirectoryError/OSError", nothing on stdout
    despite --json, and a job left `interrupted`."""
    source = portfolio(tmp_path / "in.csv", 5)
    result = score(runner, str(source), "-o", output.format(tmp=tmp_path), "--json")
    assert result.exit_code == 2
    assert_one_line_error(result, ErrorCode.BAD_INPUT_FILE, as_json=True)
    assert says in result.stderr
    assert (eager, job_keys(batch_store)) == ([], [])
    assert files_in(tmp_path) == ["in.csv"]


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Writes past `limit` bytes fail with EFBIG (as on a full disk) while this is held."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def test_an_output_write_that_fails_is_a_contract_error_and_the_job_resumes(
    runner: CliRunner, client: Client, eager: Sent, batch_store: BatchStore, tmp_path: Path
) -> None:
    """ENOSPC/EFBIG while writing gave "unexpected OSError" and nothing on stdout."""
    source = portfolio(tmp_path / "in.csv", 300, note=blank_note)
    with file_size_limit(2_000):
        result = score(
            runner, str(source), "-o", str(tmp_path / "out.csv"), "--json", "--chunk-size", "20"
        )
    assert result.exit_code == 1
    assert_one_line_error(result, ErrorCode.BACKEND_UNAVAILABLE, as_json=True)
    assert "cannot write the output" in result.stderr
    job = only_job(batch_store)
    assert f"resume with: zipscore score --resume {job}" in result.stderr
    assert client.batch_status(job).state == "interrupted"
    assert not (tmp_path / "out.csv").exists()
    resumed = score(runner, "--resume", job, "--json")
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["rows"] == 300
    assert (tmp_path / "out.csv").read_bytes().count(b"\n") == 301


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errno.ENOSPC, ErrorCode.BACKEND_UNAVAILABLE),  # the server's disk: retry later
        (errno.EDQUOT, ErrorCode.BACKEND_UNAVAILABLE),
        (errno.EACCES, ErrorCode.BAD_INPUT_FILE),  # the caller's choice of path
        (errno.EROFS, ErrorCode.BAD_INPUT_FILE),
    ],
)
def test_an_output_directory_where_no_file_can_be_created_is_a_contract_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: int, code: ErrorCode
) -> None:
    def refused(*args: Any) -> int:
        raise OSError(error, os.strerror(error))

    monkeypatch.setattr("producer.batch.output.os.open", refused)
    with pytest.raises(ZipscoreError) as caught:
        batch_output.create_partial(tmp_path / "out.csv", tmp_path / "out.csv", "0123456789abcdef")
    assert caught.value.code is code
    assert os.strerror(error) in caught.value.message


def test_the_output_lock_outlasts_the_table_pinning_of_a_new_job(
    client: Client, eager: Sent, batch_store: BatchStore, monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:  # fmt: skip
    """Regression: the lock was taken for one lease (15 s) while pinning the table may wait
    the chunk deadline (120 s) before the lease keeper renews it."""
    import producer.batch.runner

    source, target = portfolio(tmp_path / "in.csv", 10), tmp_path / "out.csv"
    seen: list[int] = []
    real_pin = producer.batch.runner.BatchRunner._pin

    def pin_and_look(runner: Any, version: int | None) -> dict[str, Any]:
        seen.append(int(batch_store.redis.pttl(batch_store.output_key(str(target.resolve())))))
        return real_pin(runner, version)

    monkeypatch.setattr(producer.batch.runner.BatchRunner, "_pin", pin_and_look)
    monkeypatch.setattr(client.settings, "batch_chunk_deadline_seconds", 60.0)  # tests: 0.3
    assert client.score_file(source, target, chunk_size=5).rows == 10
    settings = client.settings
    lease_ms = settings.batch_lease_seconds * 1000
    deadline_ms = settings.batch_chunk_deadline_seconds * 1000
    assert seen
    assert seen[0] > lease_ms + deadline_ms - 1_000  # what has elapsed since the claim
