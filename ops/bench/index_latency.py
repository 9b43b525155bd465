"""Latency of `zipscore index`: warm (Redis cache hit) vs cold (through the queue and a worker).

Against a running service (`make run`, with at least one successful refresh):

    python ops/bench/index_latency.py [--runs 200] [--base-year 2004]

Self-contained (its own database and Redis prefix, a worker process, made-up months; needs
only Postgres and Redis running, removes everything it created):

    python ops/bench/index_latency.py --self-contained

"Cold" forgets the cached entry before each call, so the client sends `index.latest`, a
worker reads Postgres and writes the cache. The in-process figures are the client's own
cost; `--cli-runs` also times the `zipscore` console script, whose start-up dominates.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from ops import celery_worker

ROOT = Path(__file__).resolve().parents[2]


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return (
        f"p50 {statistics.median(ordered) * 1000:7.2f} ms   p99 {p99 * 1000:7.2f} ms"
        f"   (n={len(ordered)})"
    )


def timed(call: Callable[[], object], runs: int, before: Callable[[], None]) -> list[float]:
    samples = []
    for _ in range(runs):
        before()
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


@contextmanager
def self_contained() -> Iterator[None]:
    """A scratch database with made-up months, a Redis prefix and a worker process."""
    import psycopg
    import redis
    from psycopg import sql

    run = uuid.uuid4().hex[:8]
    admin = os.environ.get("ZIPSCORE_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"zipscore_bench_{run}"
    os.environ["ZIPSCORE_DATABASE_URL"] = urlunsplit(urlsplit(admin)._replace(path=f"/{name}"))
    os.environ["ZIPSCORE_REDIS_PREFIX"] = prefix = f"zipscore-bench-{run}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    worker = None
    try:
        from worker.database import migrations
        from worker.database import pool as db
        from worker.index.document import IndexMonth
        from worker.index.store import PostgresHealthIndexStore

        with db.connect() as conn:
            migrations.migrate(conn)
        made_up = [  # made-up values: only the timing matters here
            IndexMonth(2004, date(2020 + m // 12, m % 12 + 1, 1), Decimal(120) + m)
            for m in range(24)
        ]
        PostgresHealthIndexStore(db.get_pool()).store(made_up)
        db.close_pool()
        log = Path(tempfile.gettempdir()) / f"{prefix}-worker.log"
        argv = celery_worker.command("index", f"bench-{run}", concurrency=1)
        try:
            worker = celery_worker.start(os.environ, log, argv)
        except celery_worker.WorkerDidNotStart:
            raise SystemExit(f"the worker did not start; see {log}") from None
        yield
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(30)
        from worker.contract.settings import get_settings

        client = redis.Redis.from_url(get_settings().cache)
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            client.delete(key)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def measure(runs: int, cli_runs: int, base_year: int) -> None:
    from producer.client import Client
    from worker.contract.index_cache import index_cache_from_settings

    client = Client(timeout=15)
    cache = index_cache_from_settings()
    client.index(base_year)  # fails early with the contract's error if there is no data

    def nothing() -> None:
        return None

    def forget() -> None:
        cache.forget(base_year)

    print(f"zipscore index --base-year {base_year}: Client.index in-process")
    print(
        "  warm (cache hit):   "
        + percentiles(timed(lambda: client.index(base_year), runs, nothing))
    )
    print(
        "  cold (queue+worker):" + percentiles(timed(lambda: client.index(base_year), runs, forget))
    )
    if cli_runs:
        exe = shutil.which("zipscore", path=str(Path(sys.executable).parent)) or "zipscore"
        command = [exe, "index", "--base-year", str(base_year), "--json"]

        def cli() -> None:
            subprocess.run(command, check=True, capture_output=True, cwd=ROOT)

        print("zipscore index as a console script (process start-up included)")
        print("  warm (cache hit):   " + percentiles(timed(cli, cli_runs, nothing)))
        print("  cold (queue+worker):" + percentiles(timed(cli, cli_runs, forget)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--cli-runs", type=int, default=10)
    parser.add_argument("--base-year", type=int, default=2004)
    parser.add_argument("--self-contained", action="store_true")
    args = parser.parse_args()
    if args.self_contained:
        with self_contained():
            measure(args.runs, args.cli_runs, args.base_year)
    else:
        measure(args.runs, args.cli_runs, args.base_year)


if __name__ == "__main__":
    main()
