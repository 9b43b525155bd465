"""What one lookup and one batch chunk cost Redis, and what one Redis serves (docs/scaling.md).

    python -m ops.bench.redis_ops [--lookups 300] [--rows 200000] [--chunk-size 10000]

On a redis-server of its own (free loopback port, no persistence) and a database of its own
(created on ZIPSCORE_DATABASE_URL's server, migrated, loaded with the sample table, dropped
at the end):

1. redis-benchmark: SET, GET, LPUSH, RPOP (BRPOP's work when a message waits), one
   command per round trip and 16 pipelined, 50 clients; then SET and GET of 20 kB, 170 kB
   and 1.7 MB values (a 1,000-, 10,000- and 100,000-row chunk's output is ~17 bytes a row
   more than its input).
2. A real worker (`celery -A worker worker -Q lookups,batch -c 2`): Redis commands per
   lookup through the queue (cache misses), per lookup answered from the cache (hits), and
   per batch chunk (two jobs of N and 2N chunks: the difference is the cost of N chunks,
   the job's fixed cost cancels), from INFO commandstats around each; the worker's idle
   polling, measured over the same seconds, is subtracted. Postgres transactions of the
   database over the same spans (pg_stat_database) say whether Postgres is on the path.

Prints a JSON report and a short table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis
from psycopg import sql

from ops import celery_worker

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_TABLE = ROOT / "ops" / "sample_data" / "risk-table.sample.csv"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def private_redis(directory: Path) -> Iterator[int]:
    port = free_port()
    server = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind",
         "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(directory)],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        client = redis.Redis(port=port)
        for _ in range(200):
            with contextlib.suppress(redis.ConnectionError):
                if client.ping():
                    break
            time.sleep(0.05)
        yield port
    finally:
        server.terminate()
        server.wait(10)


@contextlib.contextmanager
def private_database() -> Iterator[str]:
    base = os.environ.get("ZIPSCORE_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"zipscore_bench_{uuid.uuid4().hex[:8]}"
    admin = urlunsplit(urlsplit(base)._replace(path="/postgres"))
    url = urlunsplit(urlsplit(base)._replace(path=f"/{name}"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        from worker.database import migrations
        from worker.lookups import zipcodes
        from worker.lookups.risk_table import parse_text

        with psycopg.connect(url, autocommit=True) as conn:
            migrations.migrate(conn)
            zipcodes.load_rules(conn, parse_text(SAMPLE_TABLE.read_text()))
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def redis_benchmark(port: int) -> dict[str, float]:
    """Requests per second by `redis-benchmark` test name (and value size)."""
    exe = shutil.which("redis-benchmark") or "redis-benchmark"
    found: dict[str, float] = {}
    runs = [
        ("", ["-n", "200000", "-c", "50", "-t", "set,get,lpush,rpop"]),
        (" pipelined 16", ["-n", "1000000", "-c", "50", "-P", "16", "-t", "set,get,lpush,rpop"]),
        (" 20 kB", ["-n", "20000", "-c", "50", "-d", "20000", "-t", "set,get"]),
        (" 170 kB", ["-n", "4000", "-c", "20", "-d", "170000", "-t", "set,get"]),
        (" 1.7 MB", ["-n", "400", "-c", "8", "-d", "1700000", "-t", "set,get"]),
    ]
    for label, args in runs:
        out = subprocess.run(
            [exe, "-p", str(port), "-q", "--csv", *args],
            capture_output=True, text=True, timeout=600, check=True,
        ).stdout  # fmt: skip
        for line in out.splitlines():
            cells = [cell.strip('"') for cell in line.split(",")]
            if len(cells) >= 2 and re.match(r"^[0-9.]+$", cells[1]):
                found[f"{cells[0]}{label}"] = float(cells[1])
    return found


def commandstats(client: redis.Redis) -> dict[str, int]:
    stats: dict[str, Any] = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def pg_transactions(url: str) -> int:
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s", (name,)
        ).fetchone()
    return int(row[0]) if row else 0


class Span:
    """Redis commands and Postgres transactions between `start()` and `stop()`."""

    def __init__(self, client: redis.Redis, database: str) -> None:
        self.client, self.database = client, database

    def start(self) -> None:
        time.sleep(0.5)  # the statistics collector publishes every 500 ms
        self.pg = pg_transactions(self.database)
        self.before = commandstats(self.client)
        self.started = time.monotonic()

    def stop(self) -> tuple[dict[str, int], float, int]:
        seconds = time.monotonic() - self.started
        after = commandstats(self.client)
        time.sleep(0.6)
        pg = pg_transactions(self.database) - self.pg - 1  # less our own reading
        calls = {k: v - self.before.get(k, 0) for k, v in after.items()}
        calls.pop("info", None)
        return {k: v for k, v in calls.items() if v}, seconds, max(pg, 0)


def per_unit(
    calls: dict[str, int], seconds: float, idle: dict[str, float], units: int
) -> dict[str, float]:
    out = {k: (v - idle.get(k, 0.0) * seconds) / units for k, v in calls.items()}
    return {k: round(v, 2) for k, v in sorted(out.items()) if v > 0.005}


def run_lookups(env: dict[str, str], count: int, first: int) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.lookup_stream", str(count), str(first)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    answers = json.loads(done.stdout)
    failed = [a for a in answers if str(a[3]).startswith("error:")]
    if failed:
        raise RuntimeError(f"{len(failed)} lookups failed: {failed[:3]}")


def run_batch(env: dict[str, str], directory: Path, rows: int, chunk: int) -> None:
    source = directory / f"in-{rows}.csv"
    source.write_text("id,zipcode\n" + "".join(f"{i},{1000 + i % 9000}\n" for i in range(rows)))
    subprocess.run(
        [str(Path(sys.executable).parent / "zipscore"), "score", str(source), "-o",
         str(directory / f"out-{rows}.csv"), "--chunk-size", str(chunk)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=True,
    )  # fmt: skip


def measure(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="zipscore-redis-ops-") as tmp:
        directory = Path(tmp)
        with private_redis(directory) as port:
            report["redis_benchmark_requests_per_second"] = redis_benchmark(port)
        with private_redis(directory) as port, private_database() as database:
            client = redis.Redis(port=port)
            env = {
                **os.environ,
                "ZIPSCORE_REDIS_URL": f"redis://127.0.0.1:{port}/0",
                "ZIPSCORE_DATABASE_URL": database,
                "ZIPSCORE_REDIS_PREFIX": "bench",
                "PYTHONUNBUFFERED": "1",
            }
            env.pop("ZIPSCORE_REDIS_PASSWORD_FILE", None)
            log = directory / "worker.log"
            argv = celery_worker.command("lookups,batch", "bench", concurrency=2)
            worker = celery_worker.start(env, log, argv, new_session=True)
            try:
                span = Span(client, database)
                run_lookups(env, 5, 9000)  # warm: the worker's copy of the table
                span.start()
                time.sleep(args.idle_seconds)
                calls, seconds, _ = span.stop()
                idle = {k: v / seconds for k, v in calls.items()}
                report["idle_worker_commands_per_second"] = {
                    k: round(v, 2) for k, v in idle.items()
                }
                span.start()
                run_lookups(env, args.lookups, 1000)  # misses: 1000.. never asked before
                calls, seconds, pg = span.stop()
                report["per_lookup_miss"] = per_unit(calls, seconds, idle, args.lookups)
                report["lookup_miss_postgres_transactions"] = pg
                report["lookup_miss_seconds"] = round(seconds, 2)
                span.start()
                run_lookups(env, args.lookups, 1000)  # the same zipcodes: cache hits
                calls, seconds, pg = span.stop()
                report["per_lookup_hit"] = per_unit(calls, seconds, idle, args.lookups)
                report["lookup_hit_postgres_transactions"] = pg
                per_job = []
                for rows in (args.rows, 2 * args.rows):
                    span.start()
                    run_batch(env, directory, rows, args.chunk_size)
                    calls, seconds, pg = span.stop()
                    per_job.append((calls, seconds, pg))
                (small, s1, pg1), (large, s2, pg2) = per_job
                chunks = args.rows // args.chunk_size
                diff = {k: large.get(k, 0) - small.get(k, 0) for k in large}
                report["per_chunk"] = per_unit(diff, s2 - s1, idle, chunks)
                report["per_job_fixed"] = {
                    k: round(small.get(k, 0) - v * chunks - idle.get(k, 0) * s1, 1)
                    for k, v in report["per_chunk"].items()
                }
                report["batch_postgres_transactions"] = [pg1, pg2]
                report["batch_seconds"] = [round(s1, 2), round(s2, 2)]
                report["chunk_rows"] = args.chunk_size
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(worker.pid, 9)
                worker.wait(10)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lookups", type=int, default=300)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--chunk-size", type=int, default=10_000)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    args = parser.parse_args()
    report = measure(args)
    print(json.dumps(report, indent=2))
    for kind in ("per_lookup_miss", "per_lookup_hit", "per_chunk"):
        print(f"{kind}: {sum(report[kind].values()):.1f} commands {report[kind]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
