"""ops/statbel_fixture.py: the recorded document on loopback, at its one path only."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

from ops import statbel_fixture
from tests.support.statbel_documents import FIXTURE, fixture_body


@pytest.fixture
def base_url() -> Iterator[str]:
    server = statbel_fixture.serve(FIXTURE, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        assert host == "127.0.0.1"  # never a wildcard address
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_document_is_served_as_json_at_its_name(base_url: str) -> None:
    answer = httpx.get(f"{base_url}/{FIXTURE.name}", timeout=5)
    assert (answer.status_code, answer.headers["Content-Type"]) == (200, "application/json")
    assert answer.content == fixture_body()


@pytest.mark.parametrize("path", ["/", "/README.md", "/bestat-health-index.json/x", "/x.json"])
def test_any_other_path_is_404(base_url: str, path: str) -> None:
    assert httpx.get(f"{base_url}{path}", timeout=5).status_code == 404


def test_a_missing_document_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert statbel_fixture.main(["--document", "/nonexistent/doc.json", "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("statbel fixture: [Errno 2] No such file or directory")
    assert err.count("\n") == 1
