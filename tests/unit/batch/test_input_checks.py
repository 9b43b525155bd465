"""A job scores exactly the bytes it checked: inputs that change, grow, are renamed or hold
rows too long for a chunk.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from producer.cli import main as cli
from producer.client import Client
from producer.gateway import app as gateway
from tests.support.batch_jobs import (
    Sent,
    after_rows,
    chunk_sends,
    files_in,
    job_keys,
    only_job,
    score,
)
from tests.support.cli_results import assert_one_line_error
from tests.support.portfolios import blank_note, portfolio
from worker.batch import chunks
from worker.contract.batch_store import BatchStore
from worker.contract.errors import ErrorCode, ZipscoreError
from worker.contract.index_cache import IndexCache
from worker.contract.result_cache import ResultCache
from worker.contract.settings import Settings


def append_rows(path: Path) -> None:
    with path.open("ab") as f:
        f.write(b"00,\nP40,9000,x\n")  # completes the cut last row, and one more


def truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size - 30)


def rewrite_keeping_size_and_mtime(path: Path) -> None:
    """A byte of a row not yet cut changes; size and modification time look untouched."""
    before = path.stat()
    with path.open("r+b") as f:
        f.seek(before.st_size - 10)
        f.write(b"\x00")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


@pytest.mark.parametrize(
    ("change", "rows", "lines"),
    [
        (append_rows, 40, 2),
        (truncate, 40, 2),
        # Bytes the job has read already are scored as checked: this change is made where
        # the job has not read yet (the file is larger than what it reads ahead).
        (rewrite_keeping_size_and_mtime, 200_000, 10_000),
    ],
)
def test_an_input_changed_while_scoring_fails_the_job_and_publishes_nothing(
    client: Client,
    eager: Sent,
    batch_store: BatchStore,
    tmp_path: Path,
    change: Callable[[Path], None],
    rows: int,
    lines: int,
) -> None:
    """It used to end `done` (exit 0) with the rows cut from whatever the file then held, a
    row cut mid-line, or a NUL byte scored."""
    source = portfolio(tmp_path / "in.csv", rows, note=blank_note)
    with source.open("r+b") as f:  # still being appended to: the last row ends mid-line
        f.truncate(source.stat().st_size - 3)
    with pytest.raises(ZipscoreError) as caught:
        client.score_file(
            source,
            tmp_path / "out.csv",
            chunk_size=lines,
            progress=after_rows(lines, lambda _: change(source)),
        )
    assert caught.value.code is ErrorCode.BAD_INPUT_FILE
    assert "input changed while scoring" in caught.value.message
    assert files_in(tmp_path) == ["in.csv"]  # no output, no partial file left behind
    job = only_job(batch_store)
    assert client.batch_status(job).state == "failed"
    with pytest.raises(ZipscoreError) as resumed:
        client.resume_batch(job)
    assert resumed.value.code is ErrorCode.BAD_INPUT_FILE
    assert "failed" in resumed.value.message


def test_a_file_renamed_over_the_input_after_the_check_is_never_read(
    client: Client, eager: Sent, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The input was opened again by path after the check: a file renamed over it meanwhile
    was scored unchecked (a NUL byte included) against the old header."""
    source = portfolio(tmp_path / "in.csv", 30, note=blank_note)
    original = source.read_bytes()
    pin = chunks.pin_table

    def pin_then_swap(store: Any, batch: BatchStore, version: int | None) -> dict[str, Any]:
        other = tmp_path / "other.csv"
        other.write_bytes(b"a,b,c,d\n1,\x00,3,4\n" * 50)
        other.replace(source)  # after the check, before a single row is cut
        return pin(store, batch, version)

    monkeypatch.setattr(chunks, "pin_table", pin_then_swap)
    summary = client.score_file(source, tmp_path / "out.csv", chunk_size=7)
    assert summary.rows == 30
    scored = (tmp_path / "out.csv").read_bytes()
    assert b"\x00" not in scored
    assert [line.split(b",")[0] for line in scored.splitlines()[1:]] == [
        line.split(b",")[0] for line in original.splitlines()[1:]
    ]


def test_long_rows_without_quotes_are_scored_in_chunks_within_the_byte_limit(
    cache: ResultCache,
    eager: Sent,
    batch_store: BatchStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    make_settings: Callable[..., Settings],
) -> None:
    """3,000 rows of 1 KB in chunks of 50,000 lines and at most 1 MB: the check passed, then
    the job failed with "a chunk of 50000 lines ... exceeds", after its 202, on every resume."""
    client = Client(
        make_settings(batch_max_chunk_mb=1, batch_poll_seconds=0.01),
        cache=cache,
        batch_store=batch_store,
        timeout=1.0,
    )
    source = tmp_path / "in.csv"
    with source.open("w") as out:
        out.write("id,zipcode,note\n")
        out.writelines(f"{i},9000,{'x' * 1000}\n" for i in range(3000))
    sizes: list[int] = []
    put_input = BatchStore.put_input

    def measured(self: BatchStore, job: str, index: int, data: bytes) -> None:
        sizes.append(len(data))
        put_input(self, job, index, data)

    monkeypatch.setattr(BatchStore, "put_input", measured)
    summary = client.score_file(source, tmp_path / "out.csv")
    assert (summary.rows, summary.ok) == (3000, 3000)
    assert len(chunk_sends(eager)) == 3
    assert all(1024 * 1024 - 1010 < size <= 1024 * 1024 for size in sizes[:2])  # full, yet <= 1 MB
    assert sum(sizes) == source.stat().st_size - len("id,zipcode,note\n")
    assert client.batch_status(summary.job_id).chunks_total == 3


def test_a_row_longer_than_the_chunk_limit_is_refused_before_any_job(
    runner: CliRunner, client: Client, eager: Sent, batch_store: BatchStore, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(b"id,zipcode\n1,9000\n2," + b"9" * (32 * 1024 * 1024) + b"\n3,1000\n")
    result = score(runner, str(source), "-o", str(tmp_path / "out.csv"), "--json")
    assert result.exit_code == 2
    assert_one_line_error(result, ErrorCode.BAD_INPUT_FILE, as_json=True)
    assert "the row at line 3 is longer than 32 MB" in result.stderr
    assert (eager, job_keys(batch_store)) == ([], [])
    assert files_in(tmp_path) == ["in.csv"]


@pytest.mark.parametrize("size", [str(2**64), "0", "1000001"])
def test_a_chunk_size_out_of_range_is_refused(
    runner: CliRunner,
    eager: Sent,
    batch_store: BatchStore,
    tmp_path: Path,
    size: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    make_settings: Callable[..., Settings],
) -> None:
    """2**64 was an "unexpected OverflowError" with nothing on stdout, and a job left behind.
    Now it is refused as any bad option value is (`--chunk-size abc`: the usage error's code,
    exit status 2, one line, the JSON on stdout)."""
    source = portfolio(tmp_path / "in.csv", 5)

    def run(value: str) -> tuple[object, str, str]:
        argv = ["score", str(source), "-o", str(tmp_path / "o.csv"), "--chunk-size", value]
        monkeypatch.setattr("sys.argv", ["zipscore", *argv, "--json"])
        with pytest.raises(SystemExit) as exited:
            cli.main()
        printed = capsys.readouterr()
        code = json.loads(printed.out)["error"]["code"]
        assert printed.err.startswith(f"zipscore: {code}: ")
        assert printed.err.count("\n") == 1
        return exited.value.code, code, printed.err

    status, code, _ = run("abc")
    assert status == 2
    assert run(size)[:2] == (status, code)
    assert (eager, job_keys(batch_store)) == ([], [])
    with pytest.raises(ZipscoreError) as caught:  # the gateway's path, without the CLI
        Client(make_settings(), batch_store=batch_store).score_file(
            source, tmp_path / "o.csv", chunk_size=int(size)
        )
    assert caught.value.code is ErrorCode.BAD_INPUT_FILE


def test_the_gateway_refuses_a_row_too_long_for_a_chunk_before_answering_202(
    cache: ResultCache,
    index_cache: IndexCache,
    batch_store: BatchStore,
    index_eager: Sent,
    tmp_path: Path,
    make_settings: Callable[..., Settings],
) -> None:
    """The gateway answered 202 and the job then failed on every run: the refusal now comes
    from the check, which runs before the job (and so the 202) exists."""
    client = Client(
        make_settings(batch_max_chunk_mb=1, gateway_upload_dir=tmp_path / "uploads"),
        cache=cache,
        index_cache=index_cache,
        batch_store=batch_store,
        timeout=1.0,
    )
    body = b"id,zipcode\n1,9000\n2," + b"9" * (1024 * 1024) + b"\n3,1000\n"
    with TestClient(gateway.create_app(client.settings, client=client)) as api:
        response = api.post("/batches", content=body, headers={"Content-Type": "text/csv"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BAD_INPUT_FILE"
    assert "the row at line 3 is longer than 1 MB" in response.json()["error"]["message"]
    assert job_keys(batch_store) == []
    assert list((tmp_path / "uploads").iterdir()) == []


def test_a_resume_cuts_the_same_chunks_after_the_chunk_limit_setting_changed(
    cache: ResultCache,
    eager: Sent,
    batch_store: BatchStore,
    tmp_path: Path,
    make_settings: Callable[..., Settings],
) -> None:
    """Chunks scored before the stop are reused by index: the resume must cut the same byte
    ranges, so it uses the limit recorded with the job, not the setting of the day."""

    def client(mb: int) -> Client:
        chosen = make_settings(batch_max_chunk_mb=mb, batch_poll_seconds=0.01)
        return Client(chosen, cache=cache, batch_store=batch_store, timeout=1.0)

    source = tmp_path / "in.csv"
    with source.open("w") as out:
        out.write("id,zipcode,note\n")
        out.writelines(f"{i},9000,{'x' * 1000}\n" for i in range(3000))

    def stop(_: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        client(1).score_file(source, tmp_path / "out.csv", progress=after_rows(1, stop))
    job = only_job(batch_store)
    sent = len(chunk_sends(eager))
    assert client(4).resume_batch(job).rows == 3000
    assert len(chunk_sends(eager)) == sent  # the chunks in Redis were reused, none rescored
    lines = (tmp_path / "out.csv").read_bytes().splitlines()
    assert [line.split(b",")[0] for line in lines[1:]] == [b"%d" % i for i in range(3000)]


@pytest.mark.timeout(20)
def test_an_input_that_is_a_named_pipe_is_refused_without_waiting_for_a_writer(
    tmp_path: Path,
) -> None:
    """Regression: opening a FIFO with no writer blocked before the regular-file check."""
    from producer.batch.prescan import open_input

    fifo = tmp_path / "in.csv"
    os.mkfifo(fifo)
    with pytest.raises(ZipscoreError, match="not a regular file"):
        open_input(fifo)
