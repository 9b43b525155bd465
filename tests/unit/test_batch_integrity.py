"""A batch job scores exactly the bytes it checked, and its output is its own.

In-process (eager tasks, fakeredis, the dict table) with real files in a temporary
directory: the input changed, replaced or still growing while a job runs; outputs that are
the input, a directory, a device, or another running job's target; rows too long for the
chunk limit; a write that fails; the job record flushed from Redis mid-run. The same across
real processes: tests/e2e/test_batch_integrity_e2e.py.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import resource
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient

from producer import batch as batch_runner
from producer import cli, gateway
from producer.batch import BatchRunner
from producer.client import Client
from producer.progress import Reporter
from tests.cli_results import assert_no_crash, assert_one_line_error
from tests.unit.test_batch_job import chunk_sends, only_job, portfolio, settings
from worker import batch as batch_module
from worker import chunks
from worker.batch_store import BatchStore
from worker.cache import ResultCache
from worker.errors import ErrorCode, ZipscoreError
from worker.index_cache import IndexCache

Sent = list[tuple[str, tuple[Any, ...]]]
ProgressFactory = Callable[[str, int], Reporter]


@pytest.fixture
def client(cache: ResultCache, batch_store: BatchStore) -> Client:
    return Client(
        settings(batch_chunk_deadline_seconds=0.3, batch_poll_seconds=0.01),
        cache=cache,
        batch_store=batch_store,
        timeout=1.0,
    )


@pytest.fixture
def runner(client: Client, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setattr(cli, "make_client", lambda: client)
    return CliRunner()


def after_rows(rows: int, action: Callable[[str], object]) -> ProgressFactory:
    """A progress reporter that runs `action(job)` once, when `rows` rows are written."""

    class Hook(Reporter):
        fired = False

        def update(self, done: int) -> None:
            if done >= rows and not self.fired:
                self.fired = True
                action(self.job)

    return lambda job, total: Hook(job, total, None)


def files_in(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


def job_keys(batch_store: BatchStore) -> list[bytes]:
    return sorted(batch_store.redis.scan_iter(match="unit:batch:*"))


def score(runner: CliRunner, *args: str) -> Result:
    result = runner.invoke(cli.cli, ["score", *args], standalone_mode=True)
    assert_no_crash(result)
    return result


# -- the input changed while a job runs ------------------------------------------------------


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
    source = portfolio(tmp_path / "in.csv", rows, multiline=False)
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
    source = portfolio(tmp_path / "in.csv", 30, multiline=False)
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


# -- outputs ---------------------------------------------------------------------------------


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
    first = portfolio(tmp_path / "first.csv", 40, multiline=False)
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
    first = portfolio(tmp_path / "first.csv", 40, multiline=False)
    target = tmp_path / "out.csv"

    def stop(_: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        client.score_file(first, target, chunk_size=5, progress=after_rows(10, stop))
    job = only_job(batch_store)
    other = portfolio(tmp_path / "other.csv", 3, multiline=False)
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


# -- chunks cut by bytes ---------------------------------------------------------------------


def test_long_rows_without_quotes_are_scored_in_chunks_within_the_byte_limit(
    cache: ResultCache,
    eager: Sent,
    batch_store: BatchStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """3,000 rows of 1 KB in chunks of 50,000 lines and at most 1 MB: the check passed, then
    the job failed with "a chunk of 50000 lines ... exceeds", after its 202, on every resume."""
    client = Client(
        settings(batch_max_chunk_mb=1, batch_poll_seconds=0.01),
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


# -- path errors -----------------------------------------------------------------------------


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


@pytest.mark.parametrize("size", [str(2**64), "0", "1000001"])
def test_a_chunk_size_out_of_range_is_refused(
    runner: CliRunner,
    eager: Sent,
    batch_store: BatchStore,
    tmp_path: Path,
    size: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
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
        Client(settings(), batch_store=batch_store).score_file(
            source, tmp_path / "o.csv", chunk_size=int(size)
        )
    assert caught.value.code is ErrorCode.BAD_INPUT_FILE


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
    source = portfolio(tmp_path / "in.csv", 300, multiline=False)
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


def test_a_job_record_flushed_mid_batch_never_suggests_a_resume(
    runner: CliRunner,
    batch_store: BatchStore,
    eager: Sent,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After FLUSHDB the error said `--resume ID`, and that resume answered "no batch job"."""
    source = portfolio(tmp_path / "in.csv", 40, multiline=False)
    flush = after_rows(5, lambda _: batch_store.redis.flushall())
    monkeypatch.setattr("producer.progress.progress_for", flush)
    result = score(
        runner, str(source), "-o", str(tmp_path / "out.csv"), "--chunk-size", "5", "--json"
    )
    assert result.exit_code == 1
    assert_one_line_error(result, ErrorCode.BACKEND_UNAVAILABLE, as_json=True)
    assert "lost from Redis" in result.stderr
    assert "without --resume" in result.stderr
    assert "resume with" not in result.stderr
    assert files_in(tmp_path) == ["in.csv"]


def test_the_gateway_refuses_a_row_too_long_for_a_chunk_before_answering_202(
    cache: ResultCache,
    index_cache: IndexCache,
    batch_store: BatchStore,
    index_eager: Sent,
    tmp_path: Path,
) -> None:
    """The gateway answered 202 and the job then failed on every run: the refusal now comes
    from the check, which runs before the job (and so the 202) exists."""
    client = Client(
        settings(batch_max_chunk_mb=1, gateway_upload_dir=tmp_path / "uploads"),
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


def test_a_job_stopped_between_the_rename_and_done_is_finished_by_its_resume(
    client: Client,
    eager: Sent,
    batch_store: BatchStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Redis failed at the very last update: the output was in place, the partial file gone,
    and the job `interrupted`; its resume must not fail it for the missing partial file."""
    update = BatchRunner._update

    def redis_fails_at_done(
        self: BatchRunner, job: str, keeper: Any, fields: Any, **kw: Any
    ) -> None:
        if fields.get("state") == "done":
            raise ZipscoreError(ErrorCode.BACKEND_UNAVAILABLE, "Redis is unreachable")
        update(self, job, keeper, fields, **kw)

    monkeypatch.setattr(BatchRunner, "_update", redis_fails_at_done)
    source = portfolio(tmp_path / "in.csv", 30, multiline=False)
    with pytest.raises(ZipscoreError):
        client.score_file(source, tmp_path / "out.csv", chunk_size=7)
    job = only_job(batch_store)
    assert client.batch_status(job).state == "interrupted"
    assert files_in(tmp_path) == ["in.csv", "out.csv"]
    monkeypatch.setattr(BatchRunner, "_update", update)
    sent = len(eager)
    assert client.resume_batch(job).rows == 30
    assert client.batch_status(job).state == "done"
    assert len(eager) == sent  # nothing scored again
    assert (tmp_path / "out.csv").read_bytes().count(b"\n") == 31


def test_a_job_whose_rows_written_differ_from_the_rows_checked_is_never_done(
    client: Client,
    eager: Sent,
    batch_store: BatchStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker that loses a row (here, a scorer that drops the last row of chunk 2)."""
    score = batch_module.score_chunk

    def loses_a_row(text: str, table: Any, **kw: Any) -> Any:
        if text.startswith("P14,"):
            text = text[: text.rindex("P")]
        return score(text, table, **kw)

    monkeypatch.setattr(chunks, "score_chunk", loses_a_row)
    monkeypatch.setattr(chunks, "score_bytes", lambda *_, **__: None)  # the exact path only
    source = portfolio(tmp_path / "in.csv", 30, multiline=False)
    with pytest.raises(ZipscoreError) as caught:
        client.score_file(source, tmp_path / "out.csv", chunk_size=7)
    assert "wrote 29 rows of the 30 lines checked" in caught.value.message
    assert client.batch_status(only_job(batch_store)).state == "failed"
    assert files_in(tmp_path) == ["in.csv"]


def test_a_start_that_fails_to_pin_its_table_leaves_no_file_no_job_no_lock(
    client: Client,
    eager: Sent,
    batch_store: BatchStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pin = chunks.pin_table

    def unavailable(store: Any, batch: BatchStore, version: int | None) -> dict[str, Any]:
        raise ZipscoreError(ErrorCode.BACKEND_UNAVAILABLE, "Postgres is unreachable")

    monkeypatch.setattr(chunks, "pin_table", unavailable)
    source = portfolio(tmp_path / "in.csv", 10)
    with pytest.raises(ZipscoreError) as caught:
        client.score_file(source, tmp_path / "out.csv")
    assert caught.value.code is ErrorCode.BACKEND_UNAVAILABLE
    assert files_in(tmp_path) == ["in.csv"]  # the partial file created first is gone
    assert job_keys(batch_store) == []  # and the output's lock is let go
    monkeypatch.setattr(chunks, "pin_table", pin)
    assert client.score_file(source, tmp_path / "out.csv").rows == 10


def test_a_resume_cuts_the_same_chunks_after_the_chunk_limit_setting_changed(
    cache: ResultCache, eager: Sent, batch_store: BatchStore, tmp_path: Path
) -> None:
    """Chunks scored before the stop are reused by index: the resume must cut the same byte
    ranges, so it uses the limit recorded with the job, not the setting of the day."""

    def client(mb: int) -> Client:
        chosen = settings(batch_max_chunk_mb=mb, batch_poll_seconds=0.01)
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


def test_an_unexpected_error_still_prints_the_contract_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last line of defence printed one line on stderr and nothing on stdout, --json or
    not: a caller parsing stdout got nothing to parse."""

    def broken() -> Client:
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "make_client", broken)
    source = portfolio(tmp_path / "in.csv", 3)
    argv = ["zipscore", "score", str(source), "-o", str(tmp_path / "o.csv"), "--json"]
    monkeypatch.setattr("sys.argv", argv)
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 1
    printed = capsys.readouterr()
    assert json.loads(printed.out)["error"]["code"] == "BACKEND_UNAVAILABLE"
    assert printed.err == "zipscore: unexpected RuntimeError; see the worker logs\n"


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

    monkeypatch.setattr("producer.batch.os.open", refused)
    with pytest.raises(ZipscoreError) as caught:
        batch_runner._create_partial(tmp_path / "out.csv", tmp_path / "out.csv", "0123456789abcdef")
    assert caught.value.code is code
    assert os.strerror(error) in caught.value.message


@pytest.mark.timeout(20)
def test_an_input_that_is_a_named_pipe_is_refused_without_waiting_for_a_writer(
    tmp_path: Path,
) -> None:
    """Regression: opening a FIFO with no writer blocked before the regular-file check."""
    from producer.csv_chunks import open_input

    fifo = tmp_path / "in.csv"
    os.mkfifo(fifo)
    with pytest.raises(ZipscoreError, match="not a regular file"):
        open_input(fifo)


def test_the_output_lock_outlasts_the_table_pinning_of_a_new_job(
    client: Client, eager: Sent, batch_store: BatchStore, monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:  # fmt: skip
    """Regression: the lock was taken for one lease (15 s) while pinning the table may wait
    the chunk deadline (120 s) before the lease keeper renews it."""
    import producer.batch

    source, target = portfolio(tmp_path / "in.csv", 10), tmp_path / "out.csv"
    seen: list[int] = []
    real_pin = producer.batch.BatchRunner._pin

    def pin_and_look(runner: Any, version: int | None) -> dict[str, Any]:
        seen.append(int(batch_store.redis.pttl(batch_store.output_key(str(target.resolve())))))
        return real_pin(runner, version)

    monkeypatch.setattr(producer.batch.BatchRunner, "_pin", pin_and_look)
    monkeypatch.setattr(client.settings, "batch_chunk_deadline_seconds", 60.0)  # tests: 0.3
    assert client.score_file(source, target, chunk_size=5).rows == 10
    settings = client.settings
    lease_ms = settings.batch_lease_seconds * 1000
    deadline_ms = settings.batch_chunk_deadline_seconds * 1000
    assert seen
    assert seen[0] > lease_ms + deadline_ms - 1_000  # what has elapsed since the claim
