"""A plain `pip install zipscore` is a producer: the client and the CLI, nothing of the worker.

The package is built and installed without extras into a fresh virtualenv (from uv's
cache, so offline too). That install must not hold psycopg, Flower or FastAPI, and its
`zipscore` CLI and client must still get answers from the session's real worker.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import ROOT

WORKER_SIDE = ("psycopg", "psycopg_pool", "flower", "tornado", "fastapi", "uvicorn", "httpx")

pytestmark = pytest.mark.usefixtures("celery_worker")


def _uv() -> str:
    found = shutil.which("uv") or shutil.which("uv", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("uv is not installed (make install installs it)")
    return found


def _attempt(
    *command: str | Path, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        cwd=cwd,
        check=False,
    )


def _run(*command: str | Path, env: dict[str, str] | None = None, cwd: Path = ROOT) -> str:
    done = _attempt(*command, env=env, cwd=cwd)
    assert done.returncode == 0, f"{command}: {done.stderr[-2000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def producer_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with this checkout built and installed as a wheel, no extras.

    `uv sync --no-editable` installs the locked versions, from uv's cache when offline.
    """
    venv = tmp_path_factory.mktemp("producer-install") / "venv"
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv), "UV_NO_PROGRESS": "1"}
    # uv caches a local project's wheel by its pyproject.toml: rebuild it from this checkout.
    fresh = ("--reinstall-package", "zipscore", "--refresh-package", "zipscore")
    command = (_uv(), "sync", "--frozen", "--no-dev", "--no-editable", *fresh)
    _run(*command, "--python", sys.executable, "--directory", ROOT, env=env)
    return venv


def test_a_plain_install_has_no_worker_or_gateway_parts(producer_venv: Path) -> None:
    probe = (
        "import importlib.util, json; "
        f"print(json.dumps([m for m in {WORKER_SIDE!r} if importlib.util.find_spec(m)]))"
    )
    present = json.loads(_run(producer_venv / "bin" / "python", "-c", probe, cwd=producer_venv))
    assert present == []


def test_the_plain_install_cli_gets_an_answer_from_a_running_worker(
    producer_venv: Path,
) -> None:
    # A working directory outside the checkout, so only the installed package is found.
    env = {**os.environ, "PYTHONPATH": ""}
    zipscore = producer_venv / "bin" / "zipscore"
    out = _run(zipscore, "lookup", "9000", "--json", env=env, cwd=producer_venv)
    assert json.loads(out) == {"zipcode": 9000, "risk_factor": "B", "exists": True}


def test_the_plain_install_client_asks_by_name(producer_venv: Path) -> None:
    script = (
        "from producer.client import Client; import producer.client as c; "
        "print(c.__file__); print(Client(timeout=30).lookup(1000).model_dump_json())"
    )
    out = _run(producer_venv / "bin" / "python", "-c", script, cwd=producer_venv).splitlines()
    assert str(producer_venv) in out[0]  # the installed copy, not the checkout
    assert json.loads(out[1]) == {"zipcode": 1000, "risk_factor": "C", "exists": True}


def test_the_plain_install_says_which_extra_database_commands_need(producer_venv: Path) -> None:
    out = _attempt(producer_venv / "bin" / "zipscore", "db", "migrate", "--json", cwd=producer_venv)
    assert out.returncode != 0
    error = json.loads(out.stdout or out.stderr)["error"]
    assert error["code"] == "BACKEND_UNAVAILABLE"
    assert "zipscore[worker]" in error["message"]
