"""Several test hosts around one broker: what the multi-host and failover drills share.

    with MultiHost(net, tmp_path) as cluster:           # net: tests/support/netns.Network
        env = cluster.env(prefix)                        # a host's zipscore environment
        worker = cluster.start_worker(net.hosts[1], env, "batch,lookups")

The machine itself is the broker and database host: a redis-server of the drill's own bound
to the bridge's gateway address (and loopback, for the test's own checks), and the run's
Postgres (loopback only) relayed on the gateway by socat. Every process is started through
the network, so its cleanup stops them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis

from ops import celery_worker
from ops.drills.servers import ROOT, wait_until
from tests.support.environment import TEST_DATABASE_URL
from tests.support.netns import Host, Network, free_port
from tests.support.paths import SAMPLE_TABLE
from worker.batch.scoring import ScoringTable
from worker.lookups.risk_table import expand, parse_text

REDIS_SERVER = shutil.which("redis-server") or "redis-server"


def sample_factors() -> dict[int, str]:
    """{zipcode: risk factor} of the sample table the drills' database holds."""
    return dict(expand(parse_text(SAMPLE_TABLE.read_text())))


def expected_answer(zipcode: int, factors: dict[int, str]) -> str:
    """What lookup_stream prints for a right answer."""
    return factors.get(zipcode, "")


def batch_input(path: Path, rows: int) -> bytes:
    """Write `rows` rows `id,zipcode`; return the exact output scoring must produce."""
    table = ScoringTable.from_pairs(0, sample_factors())
    lines = [f"{i},{1000 + (i * 7) % 9000}" for i in range(rows)]
    path.write_text("id,zipcode\n" + "".join(line + "\n" for line in lines))
    scored = (line + table.suffixes[line.split(",")[1]] + "\n" for line in lines)
    return ("id,zipcode,risk_factor,status,error\n" + "".join(scored)).encode()


def task_runs(log: Path, task: str, outcome: str = "succeeded") -> Counter[str]:
    """How many times each id of `task` logged `outcome` (received, succeeded, reject...)."""
    text = log.read_text(errors="replace") if log.exists() else ""
    return Counter(re.findall(rf"Task {re.escape(task)}\[([0-9a-f-]+)\] {outcome}\b", text))


def in_hands(log: Path, task: str) -> set[str]:
    """Ids of `task` the worker received and has not ended (succeeded, failed, reject...)."""
    text = log.read_text(errors="replace") if log.exists() else ""
    lines = re.findall(rf"Task {re.escape(task)}\[([0-9a-f-]+)\] (\w+)", text)
    received = {task_id for task_id, word in lines if word == "received"}
    return received - {task_id for task_id, word in lines if word != "received"}


class MultiHost:
    """The broker and database side of a drill with test hosts."""

    def __init__(self, net: Network, directory: Path, redis_port: int | None = None) -> None:
        self.net = net
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.redis_port = redis_port or free_port(net.gateway)
        self.postgres_port = 0
        self.workers: dict[str, subprocess.Popen[bytes]] = {}  # by name: the main process

    def start(self) -> MultiHost:
        (self.directory / "redis").mkdir(exist_ok=True)
        self.net.spawn(
            [
                REDIS_SERVER, "--port", str(self.redis_port),
                "--bind", "127.0.0.1", self.net.gateway, "--protected-mode", "no",
                "--dir", str(self.directory / "redis"), "--save", "",
                "--appendonly", "yes", "--appendfsync", "everysec",
            ],
            log=self.directory / "redis.log",
        )  # fmt: skip
        wait_until(self._redis_answers, 15, "the drill's redis-server")
        pg = urlsplit(TEST_DATABASE_URL)
        self.postgres_port = self.net.forward(pg.port or 5432, pg.hostname or "127.0.0.1")
        return self

    def _redis_answers(self) -> bool:
        try:
            return bool(self.redis().ping())
        except redis.RedisError:
            return False

    def redis(self) -> redis.Redis:
        """A client of the drill's Redis from the machine (loopback)."""
        return redis.Redis(port=self.redis_port, socket_connect_timeout=1, socket_timeout=10)

    @property
    def redis_url(self) -> str:
        return f"redis://{self.net.gateway}:{self.redis_port}/0"

    @property
    def database_url(self) -> str:
        """The run's database as a test host reaches it: through the gateway's relay."""
        parts = urlsplit(TEST_DATABASE_URL)
        auth = parts.netloc.rpartition("@")[0]
        netloc = f"{auth}@" if auth else ""
        return urlunsplit(parts._replace(netloc=f"{netloc}{self.net.gateway}:{self.postgres_port}"))

    def env(self, base: dict[str, str], prefix: str, **more: str) -> dict[str, str]:
        """The environment of a process on a test host."""
        return {
            **base,
            "ZIPSCORE_REDIS_URL": self.redis_url,
            "ZIPSCORE_DATABASE_URL": self.database_url,
            "ZIPSCORE_REDIS_PREFIX": prefix,
            "PYTHONUNBUFFERED": "1",
            **more,
        }

    def start_worker(self, host: Host, env: dict[str, str], queues: str, name: str) -> Path:
        """`celery -A worker worker` on `host`, awaited; its log."""
        log = self.directory / f"{name}.log"
        argv = celery_worker.command(
            queues, name, concurrency=2, extra=("--without-mingle", "--without-gossip")
        )
        process = host.spawn(argv, log=log, env=env, cwd=ROOT)
        self.workers[name] = process
        deadline = time.monotonic() + 90
        while "ready." not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"worker {name} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        return log


def job_progress(client: redis.Redis, prefix: str) -> dict[str, Any]:
    """The one batch job's hash under `prefix` (empty until it exists)."""
    for key in client.scan_iter(match=f"{prefix}:batch:job:*"):
        if not key.endswith(b":lease") and client.type(key) == b"hash":
            fields: dict[bytes, bytes] = client.hgetall(key)  # type: ignore[assignment]
            record = {k.decode(): v.decode() for k, v in fields.items()}
            return {**record, "job": key.decode().rsplit(":", 1)[-1]}
    return {}
