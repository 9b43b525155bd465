"""Fixtures of the in-process batch tests: a client with short batch deadlines, and the CLI
running on it (the tier's `eager` fixture runs its tasks in-process, on fakeredis)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from click.testing import CliRunner

from producer.cli import main as cli
from producer.client import Client
from worker.contract.batch_store import BatchStore
from worker.contract.result_cache import ResultCache
from worker.contract.settings import Settings


@pytest.fixture
def client(
    cache: ResultCache, batch_store: BatchStore, make_settings: Callable[..., Settings]
) -> Client:
    return Client(
        make_settings(batch_chunk_deadline_seconds=0.3, batch_poll_seconds=0.01),
        cache=cache,
        batch_store=batch_store,
        timeout=1.0,
    )


@pytest.fixture
def runner(client: Client, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setattr(cli, "make_client", lambda: client)
    return CliRunner()
