"""The gateway's /docs and /redoc in a real headless Chromium with every request to another
host refused: the pages render the operations from the gateway's own files (no CDN)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ops.bench.gateway_bench import free_port
from ops.http_server import serving
from tests.support.browser import headless_chromium
from tests.support.paths import ROOT, SCREENSHOTS


@pytest.fixture(scope="module")
def gateway_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`zipscore serve` on loopback (no worker needed: the docs are the schema)."""
    from ops.bench.environment import zipscore_exe

    port = free_port()
    log = tmp_path_factory.mktemp("gateway") / "gateway.log"
    url = f"http://127.0.0.1:{port}"
    command = [zipscore_exe(), "serve", "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "ZIPSCORE_GATEWAY_UPLOAD_DIR": str(log.parent / "uploads")}
    with serving(command, url, env, log, cwd=ROOT):
        yield url


@pytest.mark.parametrize(
    ("page", "rendered", "count"),
    [("/docs", ".opblock", 9), ("/redoc", "[data-section-id^='operation/']", 9)],
)
def test_the_docs_render_offline_in_headless_chromium(
    gateway_url: str, page: str, rendered: str, count: int
) -> None:
    from playwright.sync_api import Route

    elsewhere: list[str] = []

    def only_the_gateway(route: Route) -> None:
        if route.request.url.startswith(gateway_url + "/"):
            route.continue_()
        else:  # as if offline: a CDN, fonts, a validator badge would all fail here
            elsewhere.append(route.request.url)
            route.abort("internetdisconnected")

    with headless_chromium() as browser:
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        context.route("**/*", only_the_gateway)
        view = context.new_page()
        view.goto(gateway_url + page, wait_until="networkidle")
        view.locator(rendered).nth(count - 1).wait_for(timeout=30_000)
        found = view.locator(rendered).count()
        text = view.inner_text("body")
        name = Path(page).name or "docs"
        view.screenshot(path=str(SCREENSHOTS / f"gateway-{name}.png"), full_page=False)
    assert found == count  # every operation of the schema, none more
    assert "/zipcodes/{zipcode}" in text
    assert "/batches/{job_id}/result" in text
    assert elsewhere == []
