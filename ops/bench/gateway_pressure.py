"""Gateway under pressure: a burst of uncached lookups with no worker, and concurrent uploads.

    python -m ops.bench.gateway_pressure                        # both cases, default sizes
    python -m ops.bench.gateway_pressure --lookups 100 --uploads 6 --upload-mb 60

Serves the gateway with `zipscore serve` in a subprocess against the real Redis and a
throwaway database and Redis prefix (the batch benchmark's helpers), with no worker at all:

- lookups: `--lookups` concurrent `GET /zipcodes/{zipcode}`, every one a cache miss (the
  cache's table version points at a version no worker writes). Prints the statuses, the time
  until every request was answered, the slowest answer, and the tasks left in the `lookups`
  queue: how many carry an `expires` already past (a worker drops them unrun) and how many
  would still run when a worker comes back.
- uploads: `--uploads` concurrent `POST /batches` of `--upload-mb` MB each, against
  `ZIPSCORE_GATEWAY_MAX_BATCHES=2`. Prints the statuses and the bytes the refused uploads
  wrote to the upload directory (watched every 10 ms) before they were refused.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import httpx
import redis

from ops.bench.environment import environment, zipscore_exe
from ops.bench.gateway_bench import HOST, free_port
from ops.http_server import serving


@contextlib.contextmanager
def served(env: Mapping[str, str], log: Path) -> Iterator[str]:
    """`zipscore serve` on a free port with `env` until the block ends; yields its base URL."""
    port = free_port()
    command = [zipscore_exe(), "serve", "--host", HOST, "--port", str(port)]
    base = f"http://{HOST}:{port}"
    with serving(command, base, env, log):
        yield base


# -- lookups with no worker ------------------------------------------------------------------


async def burst(base: str, paths: list[str]) -> list[tuple[int, float]]:
    """Every path requested at once (one connection each); (status, seconds) per request."""
    limits = httpx.Limits(max_connections=len(paths))
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as http:

        async def one(path: str) -> tuple[int, float]:
            began = time.perf_counter()
            try:
                status = (await http.get(path)).status_code
            except httpx.HTTPError:
                status = 0
            return status, time.perf_counter() - began

        return await asyncio.gather(*(one(path) for path in paths))


def queued_tasks(client: redis.Redis, queue_key: str) -> tuple[int, int]:
    """(tasks whose `expires` has passed, tasks that would still run) in a queue's list."""
    now = datetime.now(UTC)
    expired = live = 0
    for raw in client.lrange(queue_key, 0, -1):
        expires = json.loads(raw).get("headers", {}).get("expires")
        if expires and datetime.fromisoformat(expires) <= now:
            expired += 1
        else:
            live += 1
    return expired, live


def lookups_case(env: Mapping[str, str], prefix: str, redis_url: str, count: int) -> None:
    client = redis.Redis.from_url(redis_url)
    client.set(f"{prefix}:cache:risk-table-version", 10**9)  # every lookup is a miss
    with tempfile.TemporaryDirectory() as scratch, served(env, Path(scratch) / "gw.log") as base:
        began = time.perf_counter()
        answers = asyncio.run(burst(base, [f"/zipcodes/{1000 + i}" for i in range(count)]))
        everything = time.perf_counter() - began
    statuses = Counter(status for status, _ in answers)
    slowest = max(seconds for _, seconds in answers)
    refused = [seconds for status, seconds in answers if status == 503] or [float("nan")]
    queue_key = f"{prefix}:lookups"
    in_queue = client.llen(queue_key)
    time.sleep(0.5)  # an expiry set at the deadline has passed by now
    expired, live = queued_tasks(client, queue_key)
    client.delete(queue_key)
    print(f"{count} concurrent uncached lookups, no worker:")
    print(f"  statuses {dict(sorted(statuses.items()))}")
    print(f"  all answered in {everything:.2f} s; slowest {slowest:.2f} s")
    print(f"  503s answered after {min(refused):.3f} to {max(refused):.3f} s")
    print(f"  tasks left in the lookups queue: {in_queue} ({expired} expired, {live} would run)")


# -- concurrent uploads ---------------------------------------------------------------------


class Watch:
    """The largest size seen of every file in a directory, polled every 10 ms."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.sizes: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            for path in list(self.directory.glob("*.csv")):
                with contextlib.suppress(FileNotFoundError):
                    size = path.stat().st_size
                    self.sizes[path.name] = max(size, self.sizes.get(path.name, 0))
            self._stop.wait(0.01)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


async def uploads(base: str, count: int, body: bytes) -> list[int]:
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as http:

        async def one() -> int:
            try:
                return (await http.post("/batches", content=body)).status_code
            except httpx.HTTPError:
                return 0  # the server answered and closed before the body was sent

        return await asyncio.gather(*(one() for _ in range(count)))


def uploads_case(env: Mapping[str, str], count: int, megabytes: int) -> None:
    body = b"zipcode\n" + b"9000\n" * (megabytes * 1024 * 1024 // 5)
    with tempfile.TemporaryDirectory() as scratch:
        upload_dir = Path(scratch) / "uploads"
        upload_dir.mkdir()
        settings = {
            **env,
            "ZIPSCORE_GATEWAY_UPLOAD_DIR": str(upload_dir),
            "ZIPSCORE_GATEWAY_MAX_BATCHES": "2",
            "ZIPSCORE_GATEWAY_MAX_UPLOAD_MB": str(megabytes + 1),
            # No worker: the two jobs with a slot wait this long for their table pin.
            "ZIPSCORE_BATCH_CHUNK_DEADLINE_SECONDS": "60",
        }
        with served(settings, Path(scratch) / "gw.log") as base, Watch(upload_dir) as watch:
            began = time.perf_counter()
            statuses = asyncio.run(refused_first(base, count, body))
            seconds = time.perf_counter() - began
            held = {path.name for path in upload_dir.glob("*.csv")}
    refused = {name: size for name, size in watch.sizes.items() if name not in held}
    print(f"{count} concurrent uploads of {len(body) / 1e6:.1f} MB, 2 batch slots, no worker:")
    print(f"  statuses of the refused {statuses} within {seconds:.2f} s")
    print(f"  upload files created {len(watch.sizes)}; still held (slots) {len(held)}")
    print(f"  bytes written for refused uploads: {sum(refused.values()):,} in {len(refused)} files")


async def refused_first(base: str, count: int, body: bytes) -> list[int]:
    """Send every upload; return once all but the two slot holders have been answered."""
    tasks = [asyncio.ensure_future(uploads(base, 1, body)) for _ in range(count)]
    answered: list[int] = []
    for done in asyncio.as_completed(tasks):
        answered.extend(await done)
        if len(answered) == count - 2:
            break
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return sorted(answered)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lookups", type=int, default=100)
    parser.add_argument("--uploads", type=int, default=6)
    parser.add_argument("--upload-mb", type=int, default=60)
    parser.add_argument("--case", choices=("lookups", "uploads", "both"), default="both")
    args = parser.parse_args()
    with environment() as env:
        if args.case in ("lookups", "both"):
            lookups_case(env.vars, env.prefix, env.redis_url, args.lookups)
        if args.case in ("uploads", "both"):
            uploads_case(env.vars, args.uploads, args.upload_mb)
    return 0


if __name__ == "__main__":
    sys.exit(main())
