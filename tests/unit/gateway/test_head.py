"""HEAD on every GET route: the same status and headers as GET, without the body."""

from __future__ import annotations

from fastapi.testclient import TestClient

# -- HEAD -------------------------------------------------------------------------------


def test_head_answers_every_get_route_without_a_body(api: TestClient) -> None:
    for url in ("/healthz", "/zipcodes/9000", "/zipcodes/999", "/openapi.json", "/docs"):
        got, head = api.get(url), api.head(url)
        assert head.status_code == got.status_code, url
        assert head.content == b""
        assert head.headers["content-length"] == got.headers["content-length"], url
        assert head.headers["content-type"] == got.headers["content-type"], url
    assert api.head("/healthz").status_code == 200
    refused = api.head("/batches")  # a POST-only route: still 405, with what it allows
    assert (refused.status_code, refused.headers["allow"]) == (405, "POST")
