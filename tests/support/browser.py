"""Debian's Chromium under Playwright, for the tests that look at a page in a real browser."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.paths import SCREENSHOTS

CHROMIUM = Path("/usr/bin/chromium")


@contextlib.contextmanager
def headless_chromium() -> Iterator[Any]:
    """Debian's Chromium under Playwright, headless and quiet on this closed network; the
    test fails in CI without it (make browser installs it) and is skipped elsewhere."""
    if not CHROMIUM.exists():
        if os.environ.get("ZIPSCORE_REQUIRE_SERVICES") == "1":
            pytest.fail("chromium is required in CI (make browser installs it)")
        pytest.skip("chromium is not installed: `make browser` installs Debian's package")
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        try:
            yield browser
        finally:
            browser.close()
