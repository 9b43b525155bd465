"""/docs and /redoc load everything from this server (no CDN), under a strict policy."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from producer.gateway.docs import DOCS_ASSETS

# -- /docs without the internet ---------------------------------------------------------


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_load_everything_from_this_server(api: TestClient, page: str) -> None:
    html = api.get(page)
    assert html.status_code == 200
    assert not re.search(r"(?i)(https?:)?//[a-z0-9]", html.text), "an external host"
    assets = re.findall(r'(?:src|href)="([^"]+)"', html.text)
    assert len(assets) >= 2
    kinds = set()
    for asset in assets:
        assert asset.startswith(DOCS_ASSETS + "/"), asset
        answer = api.get(asset)
        assert answer.status_code == 200, asset
        kind = answer.headers["content-type"].split(";")[0]
        expected = {".js": "javascript", ".css": "text/css", ".png": "image/png"}
        assert expected[Path(asset).suffix] in kind, (asset, kind)
        kinds.add(Path(asset).suffix)
        assert len(answer.content) > 1_000
    assert ".js" in kinds
    # The browser loads nothing from elsewhere, whatever the scripts ask (ReDoc: its logo).
    policy = html.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "https:" not in policy
    assert "*" not in policy
    if page == "/docs":
        assert ".css" in kinds
        assert '"validatorUrl": null' in html.text  # no badge fetched from the validator
