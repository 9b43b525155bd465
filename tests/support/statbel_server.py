"""What the local fake Statbel (the integration tier's `statbel` fixture) answers."""

from __future__ import annotations

from pytest_httpserver import HTTPServer

# The health index document's path on Statbel's server.
PATH = "/bestat/api/views/health-index/result/JSON"


def serve(server: HTTPServer, body: bytes = b"", status: int = 200) -> None:
    """From now on, answer the document's path with `body` and `status`."""
    server.clear()
    server.expect_request(PATH).respond_with_data(
        body, status=status, content_type="application/json"
    )
