"""Helpers of the in-process batch tests (tests/unit/batch): the chunks sent, the one job in
the store, progress hooks that stop or disturb a job at a given row, the CLI's `score`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from producer.batch.progress import Reporter
from producer.batch.runner import ProgressFactory
from producer.cli import main as cli
from producer.client import Client
from tests.support.cli_results import assert_no_crash
from tests.support.portfolios import blank_note, portfolio
from worker.contract.batch_store import BatchStore

Sent = list[tuple[str, tuple[Any, ...]]]


def chunk_sends(sent: Sent) -> list[int]:
    return [args[0]["chunk"] for name, args in sent if name == "batch.score_chunk"]


def job_keys(batch_store: BatchStore) -> list[bytes]:
    return sorted(batch_store.redis.scan_iter(match="unit:batch:*"))


class Interrupt(Exception):
    pass


def interrupting_after(rows: int) -> Callable[[str, int], Reporter]:
    class Stopper(Reporter):
        def update(self, done: int) -> None:
            if done >= rows:
                raise Interrupt

    return lambda job, total: Stopper(job, total, None)


def only_job(batch_store: BatchStore) -> str:
    """The id of the one job in the store."""
    keys = [k for k in batch_store.redis.scan_iter(match="unit:batch:job:*") if b":lease" not in k]
    assert len(keys) == 1
    name: str = keys[0].decode()
    return name.rsplit(":", 1)[1]


def score_40_rows_reporting_to(reporter: type[Reporter], client: Client, tmp_path: Path) -> None:
    """Score 40 one-line rows in chunks of 5, progress going to a `reporter` of the test's."""
    client.score_file(
        portfolio(tmp_path / "in.csv", 40, note=blank_note),
        tmp_path / "out.csv",
        chunk_size=5,
        progress=lambda job, total: reporter(job, total, None),
    )


GOOD_MESSAGE = {"job": "abcdef0123", "chunk": 0, "version": 1, "column": 0, "columns": 1}


GOOD_MESSAGE |= {"newline": "\n"}


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


def score(runner: CliRunner, *args: str) -> Result:
    result = runner.invoke(cli.cli, ["score", *args], standalone_mode=True)
    assert_no_crash(result)
    return result
