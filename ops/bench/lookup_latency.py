"""Lookup latency through the queue (cache miss) and from the result cache (hit).

Run against a running service (`make run` in another shell):

    .venv/bin/python ops/bench/lookup_latency.py [--misses 300] [--hits 3000]

A miss is measured as the producer's queue round trip (`Client.call`, which always goes
through a worker: its process's copy of the table and a cache write); a hit as
`Client.lookup` for a zipcode already cached.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from producer.client import Client


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(count: int, call: Callable[[int], object]) -> list[float]:
    timings = []
    for index in range(count):
        start = time.perf_counter()
        call(1000 + index % 9000)
        timings.append((time.perf_counter() - start) * 1000)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--misses", type=int, default=300)
    parser.add_argument("--hits", type=int, default=3000)
    args = parser.parse_args()

    client = Client()
    client.lookup(1000)  # warm the connections
    misses = measure(args.misses, lambda z: client.call("zipcodes.lookup", z))
    hits = measure(args.hits, lambda z: client.lookup(1000 + z % args.misses))

    print(f"{'path':<28}{'n':>7}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}")
    for name, samples in (("miss (queue + worker)", misses), ("hit (Redis cache)", hits)):
        print(
            f"{name:<28}{len(samples):>7}{percentile(samples, 0.5):>10.2f}"
            f"{percentile(samples, 0.99):>10.2f}{statistics.fmean(samples):>10.2f}"
        )


if __name__ == "__main__":
    main()
