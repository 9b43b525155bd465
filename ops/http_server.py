"""An HTTP server process (the gateway, Prometheus): started, awaited on its readiness, stopped.

The gateway benches (ops/bench/gateway_bench.py, ops/bench/gateway_pressure.py) and the
tests that run `zipscore serve` as a real process start it this way, as ops/celery_worker.py
does for workers: the command is theirs, the wait and the clean stop are here.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import httpx


@contextlib.contextmanager
def serving(
    command: Sequence[str],
    base: str,
    env: Mapping[str, str],
    log: Path,
    *,
    cwd: Path | None = None,
    timeout: float = 30,
    ready_path: str = "/healthz",
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `command` until the block ends, once `base` + `ready_path` answers 200.

    Raises:
        RuntimeError: the process exited, or did not answer within `timeout`; with its log.
    """
    with log.open("wb") as sink:
        process = subprocess.Popen(list(command), cwd=cwd, env=dict(env), stdout=sink, stderr=sink)
    try:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}{ready_path}", timeout=1).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{base} did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
