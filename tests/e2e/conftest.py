"""End-to-end tier: a real `celery -A worker worker` process and the `zipscore` console script.

The processes get this run's database and a Redis prefix of their own, so the embedded
worker of the integration tier never takes their messages.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from ops import celery_worker
from tests.conftest import TEST_PREFIX

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "reports" / "screenshots"


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


E2E_PREFIX = f"{TEST_PREFIX}-e2e"


@pytest.fixture(scope="session")
def e2e_env(database: str) -> dict[str, str]:
    return {**os.environ, "ZIPSCORE_REDIS_PREFIX": E2E_PREFIX, "PYTHONUNBUFFERED": "1"}


def console(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the installed `zipscore` console script."""
    exe = shutil.which("zipscore", path=str(Path(sys.executable).parent)) or "zipscore"
    return subprocess.run(
        [exe, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60, check=False
    )


@pytest.fixture(scope="session")
def worker_process(
    e2e_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[subprocess.Popen[bytes]]:
    """A prefork worker with two processes, as `make run` starts it; stopped with SIGTERM."""
    log = tmp_path_factory.mktemp("e2e") / "worker.log"
    argv = celery_worker.command("lookups,index", f"e2e-{os.getpid()}")
    try:
        process = celery_worker.start(e2e_env, log, argv)
    except celery_worker.WorkerDidNotStart as exc:
        pytest.fail(str(exc))
    yield process
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
    client = redis.Redis.from_url(e2e_env.get("ZIPSCORE_REDIS_URL", "redis://127.0.0.1:6379/0"))
    for key in client.scan_iter(match=f"{E2E_PREFIX}*", count=1000):
        client.delete(key)
