"""A real `celery -A worker worker` process, started and awaited in one place.

Used by the benchmarks, the end-to-end tests and the drills: each gets the same command
line and the same wait for the worker's "ready." line (or the reason it never came).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class WorkerDidNotStart(RuntimeError):
    """The worker exited, or did not log "ready." in time; the message holds its log's tail."""


def command(
    queues: str,
    name: str,
    *,
    concurrency: int = 2,
    loglevel: str = "INFO",
    extra: Sequence[str] = (),
) -> list[str]:
    """The command line of a worker consuming `queues`, node name `name@<host>`."""
    return [
        *(sys.executable, "-m", "celery", "-A", "worker", "worker", "-Q", queues),
        *("-c", str(concurrency), "-n", f"{name}@%h", "--loglevel", loglevel, *extra),
    ]


def wait_ready(
    process: subprocess.Popen[bytes], log: Path, timeout: float = 60, *, since: int = 0
) -> None:
    """Return once the worker logged "ready." (after byte `since` of `log`: an earlier
    worker's line is not this one's); kill it and raise WorkerDidNotStart if not."""
    deadline = time.monotonic() + timeout
    while b"ready." not in log.read_bytes()[since:]:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            tail = log.read_text(errors="replace")[-3000:]
            raise WorkerDidNotStart(f"worker did not start:\n{tail}")
        time.sleep(0.1)


def start(
    env: Mapping[str, str],
    log: Path,
    argv: Sequence[str],
    *,
    new_session: bool = False,
    wait: bool = True,
) -> subprocess.Popen[bytes]:
    """Run `argv` (see `command`) from the repository root, output to `log` (appended to),
    until ready."""
    since = log.stat().st_size if log.exists() else 0
    with log.open("ab") as sink:
        process = subprocess.Popen(
            list(argv),
            cwd=ROOT,
            env=dict(env),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )
    if wait:
        wait_ready(process, log, since=since)
    return process
