"""Gateway benchmark: 64 concurrent HTTP clients against the gateway, off-loop vs blocking.

    make bench-gateway                              # also part of `make bench`
    python ops/bench/gateway_bench.py --seconds 5 --clients 64

Serves the gateway with uvicorn in a subprocess (`zipscore serve`, the real command) against
a real lookups worker subprocess (`celery -A worker worker -Q lookups -c 2`) and the real
Redis and Postgres (off-loop: cache hits read with redis.asyncio, everything else on the
gateway's thread pool), then the same routes in a deliberately blocking variant: the
ancestor's design, each client call (sync Redis, the wait for a task) made directly inside
the `async def` handler, on the event loop (this script's `--serve-blocking` mode). For
each, two cases of `GET /zipcodes/{zipcode}`:

- hits: every answer in the Redis cache (warmed first);
- misses: the cache's table version is pointed at a version no worker writes, so every
  request goes through the queue to the worker and Postgres.

One more client asks `/healthz` every 50 ms throughout: its p99 shows whether the loop was
free. Prints requests/s and p50/p99 per case. Everything runs on loopback, bounded in time
(--seconds per case), against a throwaway database and a Redis prefix of its own (the batch
benchmark's helpers). Needs the dev environment (psutil).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import socket
import ssl
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from ops.bench.environment import ROOT, Env, environment, worker
from ops.http_server import serving

HOST = "127.0.0.1"
KNOWN = list(range(9000, 9240))  # in the sample table: the hit set


@dataclass
class Case:
    variant: str
    case: str
    latencies: list[float] = field(default_factory=list)
    health: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0

    def row(self) -> str:
        ms = sorted(x * 1000 for x in self.latencies) or [0.0]
        health = sorted(x * 1000 for x in self.health) or [0.0]
        rate = len(self.latencies) / self.seconds if self.seconds else 0.0
        return (
            f"{self.variant:<10} {self.case:<7} {len(self.latencies):>9,} {rate:>9,.0f} "
            f"{pct(ms, 50):>9.1f} {pct(ms, 99):>9.1f} {pct(health, 99):>12.1f} {self.errors:>7}"
        )


def pct(sorted_values: list[float], p: int) -> float:
    index = min(len(sorted_values) - 1, round(p / 100 * (len(sorted_values) - 1)))
    return sorted_values[index]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


# -- the blocking variant ----------------------------------------------------------------


def serve_blocking(port: int) -> None:
    """The gateway with each client call made inline, on the event loop (the ancestor)."""
    import uvicorn

    from producer.client import Client
    from producer.gateway.app import create_app

    async def inline(call: Any) -> Any:
        return call()

    # A client given and no async cache reader: hits too are read by the sync client, inline.
    app = create_app(client=Client(), offload=inline)
    uvicorn.run(app, host=HOST, port=port, log_level="warning")


# -- the servers -------------------------------------------------------------------------


@contextlib.contextmanager
def gateway(env: Env, variant: str, log: Path) -> Iterator[str]:
    port = free_port()
    if variant == "off-loop":
        command = [sys.executable, "-m", "producer.cli.main", "serve", "--host", HOST]
        command += ["--port", str(port)]
    else:
        command = [sys.executable, __file__, "--serve-blocking", str(port)]
    base = f"http://{HOST}:{port}"
    with serving(command, base, env.vars, log, cwd=ROOT):
        yield base


# -- the cache states --------------------------------------------------------------------


def version_key(env: Env) -> str:
    return f"{env.prefix}:cache:risk-table-version"


def warm(env: Env, base: str) -> None:
    """Every hit-set answer cached under the table's real version."""
    client = redis.Redis.from_url(env.redis_url)
    client.delete(version_key(env))  # the next worker answer publishes the real version
    with httpx.Client(base_url=base, timeout=30) as http:
        for zipcode in KNOWN:
            http.get(f"/zipcodes/{zipcode}").raise_for_status()
        for zipcode in KNOWN:  # the version key exists now: these are written and readable
            http.get(f"/zipcodes/{zipcode}").raise_for_status()


def always_miss(env: Env) -> None:
    """Readers look for a table version no worker writes; workers never lower it."""
    redis.Redis.from_url(env.redis_url).set(version_key(env), 10**9)


# -- the load ----------------------------------------------------------------------------


async def load(base: str, clients: int, seconds: float, result: Case) -> None:
    # One connection per client, each in its own httpx client (one shared pool of 64
    # connections costs httpx more CPU than the gateway spends answering), all made before
    # the clock starts.
    tls = ssl.create_default_context()  # unused on http://, but made once, not 65 times
    https = [httpx.AsyncClient(base_url=base, timeout=60, verify=tls) for _ in range(clients)]
    probe = httpx.AsyncClient(base_url=base, timeout=60, verify=tls)

    async def one_client(http: httpx.AsyncClient, seed: int, stop: float) -> None:
        rng = random.Random(seed)  # noqa: S311  (load shape, not security)
        while time.perf_counter() < stop:
            began = time.perf_counter()
            try:
                response = await http.get(f"/zipcodes/{rng.choice(KNOWN)}")
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                result.latencies.append(time.perf_counter() - began)
            else:
                result.errors += 1

    async def prober(stop: float) -> None:
        while time.perf_counter() < stop:
            began = time.perf_counter()
            with contextlib.suppress(httpx.HTTPError):
                await probe.get("/healthz")
                result.health.append(time.perf_counter() - began)
            await asyncio.sleep(0.05)

    try:
        began = time.perf_counter()
        stop = began + seconds
        await asyncio.gather(
            prober(stop), *(one_client(http, i, stop) for i, http in enumerate(https))
        )
        result.seconds = time.perf_counter() - began
    finally:
        for http in (*https, probe):
            await http.aclose()


def run_case(env: Env, base: str, variant: str, case: str, args: argparse.Namespace) -> Case:
    if case == "hits":
        warm(env, base)
    else:
        always_miss(env)
    result = Case(variant, case)
    asyncio.run(load(base, args.clients, args.seconds, result))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0, help="per case")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/zipscore-bench"))  # noqa: S108
    parser.add_argument("--serve-blocking", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_blocking:
        serve_blocking(args.serve_blocking)
        return 0
    args.workdir.mkdir(parents=True, exist_ok=True)
    results: list[Case] = []
    with environment() as env, worker(env, "lookups", args.workdir / "gw-worker.log", "-c", "2"):
        for variant in ("off-loop", "blocking"):
            with gateway(env, variant, args.workdir / f"gateway-{variant}.log") as base:
                for case in ("hits", "misses"):
                    print(f"{variant} {case} ...", file=sys.stderr)
                    results.append(run_case(env, base, variant, case, args))
    header = (
        f"{'variant':<10} {'case':<7} {'requests':>9} {'req/s':>9} {'p50 ms':>9} "
        f"{'p99 ms':>9} {'healthz p99':>12} {'errors':>7}"
    )
    print(f"\n{args.clients} clients, {args.seconds:g} s a case, GET /zipcodes/{{zipcode}}\n")
    print(header)
    print("\n".join(result.row() for result in results))
    by = {(r.variant, r.case): r for r in results}
    for case in ("hits", "misses"):
        fast, slow = by[("off-loop", case)], by[("blocking", case)]
        ratio = (len(fast.latencies) / fast.seconds) / max(1e-9, len(slow.latencies) / slow.seconds)
        print(f"{case}: off-loop / blocking requests/s = {ratio:.2f}")
    failed = sum(r.errors for r in results if r.variant == "off-loop")
    healthz = statistics.median(by[("off-loop", "misses")].health or [0.0]) * 1000
    print(f"off-loop /healthz median during misses: {healthz:.1f} ms")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
