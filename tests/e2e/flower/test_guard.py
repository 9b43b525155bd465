"""Flower behind authentication, checked over HTTP and in a real headless Chromium; and
Flower refusing to start open to all, whatever option syntax asks it to."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.browser import headless_chromium
from tests.support.console import console
from tests.support.paths import ROOT, SCREENSHOTS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def occupied_port() -> Iterator[int]:
    """A port listened on (never accepted) on 127.0.0.1 and ::1: Linux then refuses any
    other bind of it, the wildcards 0.0.0.0 and :: included (EADDRINUSE)."""
    with socket.socket(socket.AF_INET) as v4, socket.socket(socket.AF_INET6) as v6:
        v4.bind(("127.0.0.1", 0))
        port: int = v4.getsockname()[1]
        v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        v6.bind(("::1", port))
        v4.listen()
        v6.listen()
        yield port


class Flower:
    def __init__(self, url: str, user: str, password: str) -> None:
        self.url, self.user, self.password = url, user, password


@pytest.fixture(scope="module")
def flower(
    e2e_env: dict[str, str],
    worker_process: subprocess.Popen[bytes],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Flower]:
    port = free_port()
    user, password = "zipscore", secrets.token_urlsafe(12)
    log = tmp_path_factory.mktemp("flower") / "flower.log"
    env = {
        **e2e_env,
        "FLOWER_ADDRESS": "127.0.0.1",
        "FLOWER_PORT": str(port),
        "FLOWER_BASIC_AUTH": f"{user}:{password}",
    }
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "worker.flower.guard"],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/healthcheck", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"flower did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    yield Flower(url, user, password)
    process.terminate()
    process.wait(15)
    assert password not in log.read_text(), "the password must never reach the logs"


GUARD = [sys.executable, "-m", "worker.flower.guard"]
CELERY_FLOWER = [sys.executable, "-m", "celery", "-A", "worker", "flower"]
OPEN_FORMS = [
    (["-address=0.0.0.0"], {}),
    (["--address=0.0.0.0"], {}),
    (["-address=127.0.0.1", "-address=0.0.0.0"], {}),
    (["--address=::"], {}),
    (["--address="], {}),
    ([], {"FLOWER_ADDRESS": "0.0.0.0"}),
    (["-conf={conf}"], {}),
    ([], {"FLOWER_CONF": "{conf}"}),
]


@pytest.mark.parametrize("entry", [GUARD, CELERY_FLOWER], ids=["flower_guard", "celery_flower"])
@pytest.mark.parametrize(("argv", "env"), OPEN_FORMS)
def test_flower_open_to_all_without_auth_never_starts(
    e2e_env: dict[str, str],
    tmp_path: Path,
    entry: list[str],
    argv: list[str],
    env: dict[str, str],
) -> None:
    conf = tmp_path / "elsewhere.py"
    conf.write_text("address = '0.0.0.0'\n")
    clean = {name: value for name, value in e2e_env.items() if not name.startswith("FLOWER_")}
    env = {**clean, **{name: value.format(conf=conf) for name, value in env.items()}}
    with occupied_port() as port:
        command = [*entry, *(arg.format(conf=conf) for arg in argv), f"-port={port}"]
        done = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
        )
    assert done.returncode == 1, done.stderr[-2000:]
    # One line and nothing else: had Flower tried to bind the held port, it would have died
    # of EADDRINUSE with a traceback instead.
    assert done.stderr.splitlines() == [done.stderr.strip()], done.stderr[-2000:]
    assert done.stderr.startswith("flower: refusing to start Flower on ")
    assert "without authentication" in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("entry", [GUARD, CELERY_FLOWER], ids=["flower_guard", "celery_flower"])
def test_an_address_after_a_space_stops_flower_before_it_binds(
    e2e_env: dict[str, str], entry: list[str]
) -> None:
    """Tornado needs `--address=...`: Flower itself refuses `--address 0.0.0.0` (with its
    own traceback) before it listens anywhere."""
    clean = {name: value for name, value in e2e_env.items() if not name.startswith("FLOWER_")}
    done = subprocess.run(
        [*entry, "--address", "0.0.0.0", f"--port={free_port()}"],
        cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "Option 'address' requires a value" in done.stderr
    assert "Visit me" not in done.stderr


def test_flower_refuses_requests_without_credentials(flower: Flower) -> None:
    assert httpx.get(f"{flower.url}/workers", timeout=10).status_code == 401
    assert httpx.get(f"{flower.url}/api/workers", timeout=10).status_code == 401
    wrong = httpx.get(f"{flower.url}/workers", auth=(flower.user, "wrong"), timeout=10)
    assert wrong.status_code == 401


def test_flower_with_credentials_sees_the_worker(flower: Flower) -> None:
    node = f"e2e-{os.getpid()}@"
    deadline = time.monotonic() + 30
    workers: dict[str, object] = {}
    while time.monotonic() < deadline:
        answer = httpx.get(
            f"{flower.url}/api/workers",
            params={"refresh": "1"},
            auth=(flower.user, flower.password),
            timeout=20,
        )
        assert answer.status_code == 200
        workers = answer.json()
        if any(name.startswith(node) for name in workers):
            break
        time.sleep(0.5)
    assert any(name.startswith(node) for name in workers), workers


def test_dashboard_in_headless_chromium(flower: Flower, e2e_env: dict[str, str]) -> None:
    for zipcode in ("9000", "1000", "1501"):
        assert console("lookup", zipcode, env=e2e_env).returncode == 0
    node = f"e2e-{os.getpid()}@"
    with headless_chromium() as browser:
        context = browser.new_context(
            http_credentials={"username": flower.user, "password": flower.password},
            viewport={"width": 1400, "height": 900},
        )
        page = context.new_page()
        page.goto(f"{flower.url}/workers", wait_until="networkidle")
        page.get_by_text(node).first.wait_for(timeout=30_000)
        page.screenshot(path=str(SCREENSHOTS / "flower-workers.png"), full_page=True)
        page.goto(f"{flower.url}/tasks", wait_until="networkidle")
        page.get_by_text("zipcodes.lookup").first.wait_for(timeout=30_000)
        page.screenshot(path=str(SCREENSHOTS / "flower-tasks.png"), full_page=True)
