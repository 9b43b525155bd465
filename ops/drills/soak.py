"""Soak and throughput drill: 32 concurrent producers against one worker, with figures.

    python -m ops.drills.soak                 # 60 s soak, 10 s per throughput phase (make drills)
    python -m ops.drills.soak --seconds 4 --phase-seconds 2 --json   # the scaled test

It starts a Redis of its own (free port, append-only), a database of its own on the
Postgres of ZIPSCORE_TEST_ADMIN_DATABASE_URL / ZIPSCORE_DATABASE_URL (created, loaded with
the sample table, dropped at the end) and `celery -A worker worker -Q lookups -c 2` with a
no-op task (ops/drills/drill_tasks.py). The `--producers` (32) are threads spread over
`--producer-processes` (4) processes, each thread its own client, so that one Python
process's lock does not bound the load. Then: the no-op rate and the lookup rate through
the queue, measured in alternating rounds (no-op, lookup, lookup, no-op, ...) so that a
slower minute of a shared machine weighs on both alike, with the CPU time the worker,
Redis and Postgres spent per call; the cache-hit rate from the producer; and a soak of
mixed lookups (half cache hits) with the p99 of every interval, the worker's RSS and the
open Postgres and Redis connections. Prints a table (or JSON); exits 1 on any error, or
with --check when a target is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import random
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psutil
import psycopg
from psycopg import sql

from ops.drills.servers import RedisServer, WorkerProcess

ROOT = Path(__file__).resolve().parents[2]

ADMIN_URL = os.environ.get(
    "ZIPSCORE_TEST_ADMIN_DATABASE_URL",
    os.environ.get("ZIPSCORE_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
)


@dataclass
class Phase:
    name: str
    calls: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    # CPU time the worker, Redis, Postgres and producers spent per call (ms), when measured.
    cpu_ms_per_call: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0


@dataclass
class Report:
    producers: int
    phases: list[Phase] = field(default_factory=list)
    intervals: list[dict[str, float]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "producers": self.producers,
            "phases": [{**asdict(p), "rate": round(p.rate, 1)} for p in self.phases],
            "intervals": self.intervals,
            "lookup_vs_noop": round(self.ratio, 3),
        }

    def phase(self, name: str) -> Phase:
        return next(p for p in self.phases if p.name == name)

    @property
    def ratio(self) -> float:
        return self.phase("lookup (queue)").rate / max(self.phase("no-op task").rate, 1e-9)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))] * 1000 if ordered else 0.0


# Each producer process: its threads' clients and the warmed cache-hit zipcodes.
_clients: list[Any] = []
_hits: list[int] = []

ASKS: dict[str, Callable[[Any, int], object]] = {
    "no-op task": lambda c, i: c.call("drill.noop", i),
    "lookup (queue)": lambda c, i: c.call("zipcodes.lookup", 1000 + i % 9000),
    "lookup (cache hit)": lambda c, i: c.lookup(_hits[i % len(_hits)]),
    # Half hits, half misses (a miss goes through the queue and is cached).
    "soak (mixed)": lambda c, i: c.lookup(_hits[i % len(_hits)] if i % 2 else 5500 + i % 4500),
}


def start_producer(threads: int, timeout: float, hits: list[int]) -> None:
    """Pool initializer: this process's clients (Redis URL and prefix from the environment)."""
    from producer.client import Client

    _clients[:] = [Client(timeout=timeout) for _ in range(threads)]
    _hits[:] = hits


def hammer(kind: str, seconds: float, seed: int) -> tuple[list[tuple[float, float]], int, float]:
    """This process's threads asking `kind` for `seconds`: (end time, latency), errors and
    the CPU seconds the process spent."""
    ask = ASKS[kind]
    cpu = time.process_time()
    stop = time.monotonic() + seconds
    samples: list[tuple[float, float]] = []
    errors = [0]
    lock = threading.Lock()

    def run(client: Any, seed: int) -> None:
        rng = random.Random(seed)  # noqa: S311 (load pattern, not a secret)
        mine: list[tuple[float, float]] = []
        failed = 0
        while (now := time.monotonic()) < stop:
            try:
                ask(client, rng.randrange(1 << 30))
            except Exception:  # every failure counts; the soak wants none
                failed += 1
            end = time.monotonic()
            mine.append((end, end - now))
        with lock:
            samples.extend(mine)
            errors[0] += failed

    threads = [
        threading.Thread(target=run, args=(c, seed * 1000 + i)) for i, c in enumerate(_clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return samples, errors[0], time.process_time() - cpu


class Producers:
    """`threads` producer threads over `processes` processes, kept for the whole run."""

    def __init__(self, processes: int, threads: int, timeout: float, hits: list[int]) -> None:
        # spawn: a fresh interpreter per producer (no forked Redis sockets or locks).
        context = multiprocessing.get_context("spawn")
        shares = [threads // processes + (n < threads % processes) for n in range(processes)]
        self.pools = [
            context.Pool(1, initializer=start_producer, initargs=(share, timeout, hits))
            for share in shares
        ]

    def run(self, kind: str, seconds: float) -> tuple[list[tuple[float, float]], int]:
        """Every producer asks `kind` for `seconds`, all at once: samples and errors."""
        pending = [
            pool.apply_async(hammer, (kind, seconds, n)) for n, pool in enumerate(self.pools)
        ]
        samples: list[tuple[float, float]] = []
        errors = 0
        self.cpu_seconds = 0.0
        for job in pending:
            mine, failed, cpu = job.get(timeout=seconds + 120)
            samples.extend(mine)
            errors += failed
            self.cpu_seconds += cpu
        return samples, errors

    def close(self) -> None:
        for pool in self.pools:
            pool.terminate()
            pool.join()


def phase(name: str, samples: list[tuple[float, float]], errors: int, seconds: float) -> Phase:
    latencies = [latency for _, latency in samples]
    return Phase(name, len(samples), seconds, errors, percentile(latencies, 0.5),
                 percentile(latencies, 0.99))  # fmt: skip


def worker_rss_mb(worker: WorkerProcess) -> float:
    parent = psutil.Process(worker.pid)
    processes = [parent, *parent.children(recursive=True)]
    return sum(p.memory_info().rss for p in processes if p.is_running()) / 2**20


CPU_COMPONENTS = ("worker", "redis", "postgres", "producers")


def server_cpu_seconds(
    worker: WorkerProcess, redis_server: RedisServer, conn: Any
) -> dict[str, float]:
    """CPU seconds used so far by the worker (and its pool), Redis and this database's backends."""
    rows = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
    ).fetchall()
    parent = psutil.Process(worker.pid)
    components = {
        "worker": [parent, *parent.children(recursive=True)],
        "redis": [psutil.Process(redis_server.process.pid)] if redis_server.process else [],
        "postgres": [psutil.Process(int(row[0])) for row in rows],
    }
    spent = dict.fromkeys(components, 0.0)
    for name, processes in components.items():
        for process in processes:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                spent[name] += times.user + times.system
    return spent


@contextlib.contextmanager
def soak_database() -> Iterator[str]:
    """A database of the soak's own, migrated and loaded with the sample table."""
    from worker.database import migrations
    from worker.lookups import zipcodes
    from worker.lookups.risk_table import parse_text

    name = f"zipscore_soak_{uuid.uuid4().hex[:8]}"
    url = urlunsplit(urlsplit(ADMIN_URL)._replace(path=f"/{name}"))
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            migrations.migrate(conn)
            table = ROOT / "ops" / "sample_data" / "risk-table.sample.csv"
            zipcodes.load_rules(conn, parse_text(table.read_text()))
        yield url
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def rates(
    args: argparse.Namespace, producers: Producers, server_cpu: Callable[[], dict[str, float]]
) -> list[Phase]:
    """The no-op task and lookups through the queue, in alternating rounds (ABBA...) so that
    a slower minute of a shared machine weighs on both alike, with each part's CPU per call."""
    round_seconds = args.phase_seconds / args.rounds
    totals: dict[str, tuple[list[tuple[float, float]], int, dict[str, float]]] = {}
    for n in range(args.rounds):
        order = ["no-op task", "lookup (queue)"]
        for kind in order if n % 2 == 0 else order[::-1]:
            before = server_cpu()
            samples, errors = producers.run(kind, round_seconds)
            after = server_cpu()
            spent = {name: after[name] - before[name] for name in after}
            spent["producers"] = producers.cpu_seconds
            mine, failed, cpu = totals.setdefault(kind, ([], 0, {}))
            for name, seconds in spent.items():
                cpu[name] = cpu.get(name, 0.0) + seconds
            totals[kind] = (mine + samples, failed + errors, cpu)
    phases = []
    for kind, (samples, errors, spent) in totals.items():
        done = phase(kind, samples, errors, args.phase_seconds)
        calls = max(done.calls, 1)
        done.cpu_ms_per_call = {name: round(s * 1000 / calls, 3) for name, s in spent.items()}
        phases.append(done)
    return phases


def run(args: argparse.Namespace, redis_server: RedisServer, database_url: str) -> Report:
    prefix = f"zipscore-soak-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "ZIPSCORE_REDIS_URL": redis_server.url, "ZIPSCORE_REDIS_PREFIX": prefix,
           "ZIPSCORE_DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1"}  # fmt: skip
    os.environ.update({k: env[k] for k in ("ZIPSCORE_REDIS_URL", "ZIPSCORE_REDIS_PREFIX",
                                           "ZIPSCORE_DATABASE_URL")})  # fmt: skip
    from producer.client import Client

    log = Path(tempfile.mkdtemp(prefix="zipscore-soak-")) / "worker.log"
    worker = WorkerProcess(env, log, queues="lookups", concurrency=args.concurrency,
                           extra=("-I", "ops.drills.drill_tasks"), loglevel="WARNING")  # fmt: skip
    report = Report(args.producers)
    producers: Producers | None = None
    conn = psycopg.connect(database_url, autocommit=True)
    try:
        warm = Client(timeout=60)  # the first answer waits for the worker to be up
        warm.call("drill.noop", 0)
        hits = list(range(1000, 1000 + args.hits))  # the cache-hit keys, warmed
        pending = [warm.app.send_task("zipcodes.lookup", args=(z,)) for z in hits]
        for answer in pending:
            answer.get(timeout=120)
        producers = Producers(args.producer_processes, args.producers, args.timeout, hits)
        producers.run("no-op task", 0.5)  # every producer connected before the clock runs

        server_cpu = lambda: server_cpu_seconds(worker, redis_server, conn)  # noqa: E731
        report.phases += rates(args, producers, server_cpu)
        samples, errors = producers.run("lookup (cache hit)", args.phase_seconds)
        report.phases.append(phase("lookup (cache hit)", samples, errors, args.phase_seconds))

        redis_client = redis_server.client()
        started = time.monotonic()
        result: dict[str, Any] = {}
        running = producers

        def soak() -> None:
            result["samples"], result["errors"] = running.run("soak (mixed)", args.seconds)

        thread = threading.Thread(target=soak)
        thread.start()
        gauges: list[tuple[float, float, int, int]] = []
        while thread.is_alive():
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            ).fetchone()
            clients = int(redis_client.info("clients")["connected_clients"])
            gauges.append((time.monotonic(), worker_rss_mb(worker), int(row[0]) if row else 0,
                           clients))  # fmt: skip
            thread.join(min(1.0, args.seconds / 10))
        samples, errors = result["samples"], result["errors"]
        report.phases.append(phase("soak (mixed)", samples, errors, args.seconds))
        interval = args.seconds / args.intervals
        for n in range(args.intervals):
            low, high = started + n * interval, started + (n + 1) * interval
            inside = [lat for end, lat in samples if low <= end < high]
            taken = [g for g in gauges if low <= g[0] < high] or gauges[-1:]
            report.intervals.append({
                "interval": n + 1, "lookups": len(inside),
                "p99_ms": round(percentile(inside, 0.99), 2),
                "worker_rss_mb": round(max(g[1] for g in taken), 1),
                "pg_connections": max(g[2] for g in taken),
                "redis_clients": max(g[3] for g in taken),
            })  # fmt: skip
    finally:
        if producers is not None:
            producers.close()
        conn.close()
        worker.close()
    return report


def table(report: Report) -> str:
    lines = [f"{'phase':<20} {'calls':>8} {'per s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
             f"  CPU ms per call: {' / '.join(CPU_COMPONENTS)}"]  # fmt: skip
    for p in report.phases:
        parts = (p.cpu_ms_per_call.get(k, 0.0) for k in CPU_COMPONENTS)
        cpu = " / ".join(f"{ms:.2f}" for ms in parts) if p.cpu_ms_per_call else "-"
        lines.append(f"{p.name:<20} {p.calls:>8} {p.rate:>9.1f} {p.p50_ms:>8.2f} "
                     f"{p.p99_ms:>8.2f} {p.errors:>7}  {cpu}")  # fmt: skip
    lines.append(f"lookup through the queue at {report.ratio:.0%} of the no-op task's rate")
    lines.append(f"{'interval':>8} {'lookups':>8} {'p99 ms':>8} {'RSS MB':>8} {'pg conn':>8} "
                 f"{'redis cl':>8}")  # fmt: skip
    for i in report.intervals:
        lines.append(f"{i['interval']:>8} {i['lookups']:>8} {i['p99_ms']:>8.2f} "
                     f"{i['worker_rss_mb']:>8.1f} {i['pg_connections']:>8} "
                     f"{i['redis_clients']:>8}")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="soak length")
    parser.add_argument("--phase-seconds", type=float, default=10.0, help="each rate phase")
    parser.add_argument("--producers", type=int, default=32, help="producer threads in all")
    parser.add_argument("--producer-processes", type=int, default=4,
                        help="processes the producer threads are spread over")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=4,
                        help="alternating no-op and lookup rounds in --phase-seconds")  # fmt: skip
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes")
    parser.add_argument("--intervals", type=int, default=6)
    parser.add_argument("--hits", type=int, default=4500, help="zipcodes cached beforehand")
    parser.add_argument("--timeout", type=float, default=10.0, help="each producer's timeout")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 unless lookups reach 90%% of the no-op rate")  # fmt: skip
    args = parser.parse_args(argv)
    server = RedisServer(Path(tempfile.mkdtemp(prefix="zipscore-soak-redis-")))
    server.start()
    try:
        with soak_database() as url:
            report = run(args, server, url)
    finally:
        server.close()
    print(json.dumps(report.as_json()) if args.json else table(report))
    if any(p.errors for p in report.phases):
        return 1
    return 1 if args.check and report.ratio < 0.9 else 0


if __name__ == "__main__":
    raise SystemExit(main())
