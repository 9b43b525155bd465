"""The gateway's integration fixtures: a local Statbel the embedded worker fetches from."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer

from tests.support.gateway import STATBEL_PATH
from worker import runtime
from worker.index.statbel import StatbelSource


@pytest.fixture
def statbel(httpserver: HTTPServer) -> Iterator[HTTPServer]:
    """The embedded worker fetches from this local server (same process: runtime is shared).
    Answer with `statbel.expect_request(STATBEL_PATH).respond_with_data(...)`."""
    source = StatbelSource(httpserver.url_for(STATBEL_PATH), timeout=0.5, max_bytes=5_000_000)
    runtime.use_index(source=source)
    yield httpserver
    runtime.use_index()
