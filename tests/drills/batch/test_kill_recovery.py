"""A batch worker SIGKILLed twice mid-job, a replacement started each time.

Real processes on a Redis of the drill's own: `zipscore score` on a realistic portfolio
(quoted names with commas and doubled quotes, 1 % bad zipcodes), once undisturbed and once
with its only batch worker killed (the whole process group, no shutdown) after a quarter and
after six tenths of the chunks are written, a new worker started at once. The chunks the dead
worker held get backup copies within seconds (producer/batch/backups.py) instead of waiting
out the 120 s chunk deadline. The output is the undisturbed one byte for byte: every row
exactly once, in order. Under `make drills` (2,000,000 rows) the disturbed job must finish
within 1.5x its undisturbed time + 5 s; `make test` runs 200,000 rows and checks the rest.
Both with LF line endings and with a UTF-8 BOM and CRLF, as a spreadsheet on Windows saves.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from ops.bench.inputs import generate_portfolio
from ops.drills.servers import ROOT, RedisServer
from tests.support.drills import FULL, StartWorker, scaled

# At CI scale, smaller chunks: 200,000 rows in 4 chunks can be scored between two looks at
# the job's progress, and then no kill lands mid-job.
CHUNK = scaled(10_000, 50_000)


def score(env: dict[str, str], source: Path, target: Path) -> subprocess.Popen[str]:
    argv = [str(Path(sys.executable).parent / "zipscore"), "score", str(source), "-o"]
    argv += [str(target), "--chunk-size", str(CHUNK), "--json"]
    return subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.parametrize("windows", [False, True], ids=["lf", "bom-crlf"])
def test_two_sigkills_cost_seconds_and_lose_or_repeat_no_row(
    redis_server: RedisServer,
    drill_env: dict[str, str],
    start_worker: StartWorker,
    tmp_path: Path,
    windows: bool,
) -> None:
    """`windows`: the same rows with a UTF-8 BOM and CRLF line endings."""
    rows = scaled(200_000, 2_000_000)
    source = generate_portfolio(tmp_path / "customers.csv", rows, windows=windows)
    chunks = -(-rows // CHUNK)
    worker = start_worker(drill_env, queues="batch")

    started = time.monotonic()
    calm = score(drill_env, source, tmp_path / "calm.csv")
    _, stderr = calm.communicate(timeout=300)
    undisturbed = time.monotonic() - started
    assert calm.returncode == 0, stderr

    redis = redis_server.client()
    pattern = f"{drill_env['ZIPSCORE_REDIS_PREFIX']}:batch:job:*"

    def job_keys() -> set[bytes]:
        return {key for key in redis.scan_iter(match=pattern) if key.count(b":") == 3}

    calm_keys = job_keys()

    def chunks_done() -> int:
        return sum(int(redis.hget(key, "chunks_done") or 0) for key in job_keys() - calm_keys)

    started = time.monotonic()
    job = score(drill_env, source, tmp_path / "killed.csv")
    for share in (0.25, 0.6):
        while chunks_done() < share * chunks and job.poll() is None:
            time.sleep(0.01)
        worker.kill()
        worker = start_worker(drill_env, queues="batch", wait=False)
    _, stderr = job.communicate(timeout=600)
    disturbed = time.monotonic() - started
    assert job.returncode == 0, stderr

    assert (tmp_path / "killed.csv").read_bytes() == (tmp_path / "calm.csv").read_bytes()
    resubmitted = sum(int(redis.hget(key, "resubmitted") or 0) for key in job_keys() - calm_keys)
    bound = 1.5 * undisturbed + 5
    print(
        f"kill recovery: {rows:,} rows, undisturbed {undisturbed:.1f} s, two SIGKILLs "
        f"{disturbed:.1f} s (bound {bound:.1f} s, ratio {disturbed / undisturbed:.2f}x), "
        f"{resubmitted} chunk copies sent again"
    )
    assert resubmitted > 0  # the kills did land mid-job
    if FULL:
        assert disturbed <= bound
