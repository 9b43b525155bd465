"""What limits a batch job as workers are added: one batch worker process against two, and
the CPU each part spends on the same file.

    python -m ops.bench.scaling [--rows 2000000] [--repeats 3]

The realistic portfolio (ops/bench/inputs.py) is scored by `zipscore score` with a batch
worker of `-c 1`, then `-c 2`, in interleaved rounds. Each run reports its wall time and the
CPU seconds of the producer, of the worker (main process and pool), and of Redis (its own
INFO counters), with the bytes Redis moved. From the CPU per row of each part follows the
most rows/s one producer, one Redis core and one worker process can carry: the ceiling more
worker machines would meet. A tiny file's run gives the producer's fixed cost (interpreter
start and imports), left out of its per-row figure.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import redis

from ops.bench.batch_bench import score_with
from ops.bench.environment import Env, environment, worker
from ops.bench.inputs import generate_portfolio

MB = 1024 * 1024


@dataclass(frozen=True)
class Run:
    seconds: float
    producer_cpu: float
    worker_cpu: float
    redis_cpu: float
    redis_mb: float


def _tree_cpu(process: psutil.Process) -> float:
    total = 0.0
    for proc in [process, *process.children(recursive=True)]:
        times = proc.cpu_times()
        total += times.user + times.system
    return total


def _redis_counters(client: redis.Redis) -> tuple[float, int]:
    cpu, stats = client.info("cpu"), client.info("stats")
    moved = int(stats["total_net_input_bytes"]) + int(stats["total_net_output_bytes"])
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]), moved


def score_once(env: Env, source: Path, workdir: Path, process: psutil.Process) -> Run:
    """One `zipscore score` while `process` (a batch worker) runs; the CPU of each part."""
    client = redis.Redis.from_url(env.redis_url)
    worker_before, (redis_before, moved_before) = _tree_cpu(process), _redis_counters(client)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    run = score_with(env, source, workdir, process, watch=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    redis_after, moved_after = _redis_counters(client)
    return Run(
        run.wall_seconds,
        after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime,
        _tree_cpu(process) - worker_before,
        redis_after - redis_before,
        (moved_after - moved_before) / MB,
    )


def measure(env: Env, source: Path, rows: int, workdir: Path, repeats: int) -> list[str]:
    """`-c 1` and `-c 2` on `source`, `repeats` interleaved rounds; the table of medians."""
    tiny = workdir / "scaling-tiny.csv"
    tiny.write_text("customer_id,name,zipcode,premium\nC1,Jan,9000,100.00\n")
    runs: dict[int, list[Run]] = {1: [], 2: []}
    fixed: list[float] = []
    for round_ in range(repeats):
        print(f"scaling, round {round_ + 1} of {repeats} ...", file=sys.stderr)
        for processes, done in runs.items():
            log = workdir / f"scaling-worker-{processes}.log"
            with worker(env, "batch", log, "-c", str(processes)) as process:
                time.sleep(0.5)
                fixed.append(score_once(env, tiny, workdir, process).producer_cpu)
                done.append(score_once(env, source, workdir, process))
    startup = statistics.median(fixed)
    lines = [
        "",
        f"scaling: {rows:,} rows of the realistic portfolio; medians of {repeats} rounds; "
        "CPU seconds of each part in the same run",
        f"{'batch worker':<14} {'s':>6} {'rows/s':>11} {'producer':>9} {'worker':>8} "
        f"{'Redis':>7} {'Redis MB':>9}",
    ]
    per_row: dict[str, float] = {}
    for processes, done in runs.items():
        med = {
            field: statistics.median(getattr(run, field) for run in done)
            for field in ("seconds", "producer_cpu", "worker_cpu", "redis_cpu", "redis_mb")
        }
        lines.append(
            f"{f'-c {processes}':<14} {med['seconds']:6.2f} {rows / med['seconds']:11,.0f} "
            f"{med['producer_cpu']:9.2f} {med['worker_cpu']:8.2f} {med['redis_cpu']:7.2f} "
            f"{med['redis_mb']:9.0f}"
        )
        per_row = {
            "producer": max(med["producer_cpu"] - startup, 1e-9) / rows,
            "worker process": med["worker_cpu"] / rows,
            "Redis": max(med["redis_cpu"], 1e-9) / rows,
        }
    lines.append(
        f"ceilings (rows/s a part carries per CPU core; the producer less its {startup:.2f} s "
        "start): " + ", ".join(f"{part} {1 / cost:,.0f}" for part, cost in per_row.items())
    )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/zipscore-bench"))  # noqa: S108
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    source = generate_portfolio(args.workdir / f"customers-{args.rows}.csv", args.rows)
    with environment() as env:
        print("\n".join(measure(env, source, args.rows, args.workdir, args.repeats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
