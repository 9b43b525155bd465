"""`zipscore serve`: uvicorn with the app factory, and a refusal to listen beyond
loopback without API keys (a real subprocess)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from producer.cli import main as cli

# -- the command ------------------------------------------------------------------------


def test_zipscore_serve_runs_uvicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: dict[str, Any] = {}
    monkeypatch.setattr("uvicorn.run", lambda target, **kwargs: ran.update(kwargs, app=target))
    monkeypatch.setattr("worker.contract.log_setup.configure", lambda *a, **k: None)
    result = CliRunner().invoke(cli.cli, ["serve", "--port", "5099"])
    assert result.exit_code == 0, result.output
    assert ran["app"] == "producer.gateway.app:create_app"
    assert (ran["host"], ran["port"], ran["factory"]) == ("127.0.0.1", 5099, True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_zipscore_serve_beyond_loopback_without_keys_refuses_to_start(tmp_path: Path) -> None:
    """A real `zipscore serve --host 0.0.0.0`: one line, exit 1, nothing bound."""
    port = free_port()
    env = {
        name: value
        for name, value in __import__("os").environ.items()
        if not name.startswith("ZIPSCORE_GATEWAY_API_KEYS")
    }
    exe = Path(sys.executable).with_name("zipscore")
    began = time.monotonic()
    done = subprocess.run(
        [str(exe), "serve", "--host", "0.0.0.0", "--port", str(port)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("zipscore: BACKEND_UNAVAILABLE: refusing to serve on '0.0.0.0'")
    assert "ZIPSCORE_GATEWAY_API_KEYS_FILE" in lines[0]
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert time.monotonic() - began < 30
    with socket.socket() as probe:  # the port was never taken
        probe.bind(("0.0.0.0", port))
