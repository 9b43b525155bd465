"""A batch job whose Redis is flushed mid-run (FLUSHDB, or everything evicted).

Real processes on a Redis of the drill's own: a batch worker and a `zipscore score`
producer. The producer used to end with "... (resume with: zipscore score --resume ID)",
and that resume answered "no batch job ID": now it says the job record was lost and to
start again without --resume, and leaves no partial output behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from ops.drills.servers import ROOT, RedisServer
from tests.support.drills import StartWorker


def test_a_job_whose_redis_is_flushed_mid_run_says_to_start_again(
    redis_server: RedisServer, drill_env: dict[str, str], start_worker: StartWorker, tmp_path: Path
) -> None:
    env = {
        **drill_env,
        "ZIPSCORE_BATCH_LEASE_SECONDS": "1",
        "ZIPSCORE_BATCH_CHUNK_DEADLINE_SECONDS": "2",
    }
    start_worker(env, queues="batch")
    source = tmp_path / "in.csv"
    source.write_text("id,zipcode\n" + "".join(f"{i},{1000 + i % 9000}\n" for i in range(60_000)))
    exe = Path(sys.executable).parent / "zipscore"
    argv = [
        str(exe),
        "score",
        str(source),
        "-o",
        str(tmp_path / "out.csv"),
        "--chunk-size",
        "100",
        "--json",
    ]
    producer = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    redis = redis_server.client()
    pattern = f"{env['ZIPSCORE_REDIS_PREFIX']}:batch:job:*"
    deadline = time.monotonic() + 60

    def written() -> bool:
        jobs = [key for key in redis.scan_iter(match=pattern) if not key.endswith(b":lease")]
        return any(redis.hget(key, "chunks_done") not in (None, b"0") for key in jobs)

    while not written():
        assert producer.poll() is None, producer.communicate()
        assert time.monotonic() < deadline, "the job never wrote a chunk"
        time.sleep(0.01)
    redis.flushdb()
    stdout, stderr = producer.communicate(timeout=60)
    assert producer.returncode == 1, stderr
    last = stderr.splitlines()[-1]
    assert last.startswith("zipscore: BACKEND_UNAVAILABLE: "), stderr
    assert "record was lost from Redis" in last
    assert "without --resume" in last
    assert "resume with" not in stderr
    assert json.loads(stdout)["error"]["code"] == "BACKEND_UNAVAILABLE"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith((".part", "out.csv"))) == []
