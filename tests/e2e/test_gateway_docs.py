"""The gateway's /docs and /redoc in a real headless Chromium with every request to another
host refused: the pages render the operations from the gateway's own files (no CDN)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ROOT
from tests.e2e.test_flower import CHROMIUM, SCREENSHOTS, free_port


@pytest.fixture(scope="module")
def gateway_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`zipscore serve` on loopback (no worker needed: the docs are the schema)."""
    from ops.bench.batch_bench import zipscore_exe

    port = free_port()
    log = tmp_path_factory.mktemp("gateway") / "gateway.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [zipscore_exe(), "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env={**os.environ, "ZIPSCORE_GATEWAY_UPLOAD_DIR": str(log.parent / "uploads")},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.mark.parametrize(
    ("page", "rendered", "count"),
    [("/docs", ".opblock", 9), ("/redoc", "[data-section-id^='operation/']", 9)],
)
def test_the_docs_render_offline_in_headless_chromium(
    gateway_url: str, page: str, rendered: str, count: int
) -> None:
    if not CHROMIUM.exists():
        if os.environ.get("ZIPSCORE_REQUIRE_SERVICES") == "1":
            pytest.fail("chromium is required in CI (make browser installs it)")
        pytest.skip("chromium is not installed: `make browser` installs Debian's package")
    from playwright.sync_api import Route, sync_playwright

    elsewhere: list[str] = []

    def only_the_gateway(route: Route) -> None:
        if route.request.url.startswith(gateway_url + "/"):
            route.continue_()
        else:  # as if offline: a CDN, fonts, a validator badge would all fail here
            elsewhere.append(route.request.url)
            route.abort("internetdisconnected")

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            context.route("**/*", only_the_gateway)
            view = context.new_page()
            view.goto(gateway_url + page, wait_until="networkidle")
            view.locator(rendered).nth(count - 1).wait_for(timeout=30_000)
            found = view.locator(rendered).count()
            text = view.inner_text("body")
            name = Path(page).name or "docs"
            view.screenshot(path=str(SCREENSHOTS / f"gateway-{name}.png"), full_page=False)
        finally:
            browser.close()
    assert found == count  # every operation of the schema, none more
    assert "/zipcodes/{zipcode}" in text
    assert "/batches/{job_id}/result" in text
    assert elsewhere == []
