"""Starting a worker for the benches and drills (ops/celery_worker.py): ready means this one."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from ops import celery_worker


def test_a_log_reused_from_an_earlier_worker_does_not_count_as_ready(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    log.write_text("... bench-batch@host ready.\n")  # the worker of an earlier run
    late = (
        "import time; time.sleep(0.5); print('bench-batch@host ready.', flush=True); time.sleep(30)"
    )
    started = time.monotonic()
    process = celery_worker.start(os.environ, log, [sys.executable, "-c", late])
    try:
        assert time.monotonic() - started >= 0.4
        assert log.read_text().count("ready.") == 2
    finally:
        process.kill()
        process.wait()
