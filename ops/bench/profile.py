"""cProfile over a burst of lookups and a batch run: where the time goes.

    make profile            # = python -m ops.bench.profile [--rows 200000] [--lookups 2000]

Against a throwaway database and Redis prefix (as the benchmarks): profiles the producer
of a lookup burst (queue round trips, then cache hits) with a real lookups worker, the
producer of a `zipscore score` run with a real batch worker, and a solo-pool batch worker
itself. Saves reports/profile-*.prof and prints the top functions by cumulative time.
"""

from __future__ import annotations

import argparse
import io
import pstats
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from ops.bench.batch_bench import profile_worker
from ops.bench.environment import ROOT, environment, worker
from ops.bench.inputs import generate

REPORTS = ROOT / "reports"


def top_functions(path: Path, count: int) -> str:
    """zipscore's own functions by cumulative time, then every function by own time."""
    stream = io.StringIO()
    stats = pstats.Stats(str(path), stream=stream)
    own_code = re.escape(str(ROOT)) + r"/(worker|producer)/"
    stats.sort_stats("cumulative").print_stats(own_code, count)
    stats.sort_stats("tottime").print_stats(count)
    return stream.getvalue()


def profiled(out: Path, args: list[str], env: dict[str, str]) -> None:
    command = [sys.executable, "-m", "cProfile", "-o", str(out), *args]
    subprocess.run(command, env=env, cwd=ROOT, check=True, capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--lookups", type=int, default=2_000)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "zipscore-profile"
    )
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    # Compiled once, so no profile is dominated by recompiling modules at import.
    subprocess.run([sys.executable, "-m", "compileall", "-q", "worker", "producer"], check=False)
    REPORTS.mkdir(exist_ok=True)
    source = generate(args.workdir / f"profile-{args.rows}.csv", args.rows)
    outputs: dict[str, Path] = {}
    with environment() as env:
        with worker(env, "lookups", args.workdir / "lookups-worker.log"):
            outputs["lookup burst (producer)"] = REPORTS / "profile-lookups.prof"
            misses, hits = str(args.lookups // 4), str(args.lookups)
            profiled(
                outputs["lookup burst (producer)"],
                ["ops/bench/lookup_latency.py", "--misses", misses, "--hits", hits],
                env.vars,
            )
        with worker(env, "batch", args.workdir / "batch-worker.log", "-c", "2"):
            outputs["batch (producer)"] = REPORTS / "profile-batch-producer.prof"
            target = args.workdir / "profile.scored.csv"
            profiled(
                outputs["batch (producer)"],
                ["-m", "producer.cli.main", "score", str(source), "-o", str(target), "--json"],
                env.vars,
            )
        outputs["batch (worker, solo pool)"] = profile_worker(env, source, args.workdir)
    for name, path in outputs.items():
        print(f"== {name}: {path.relative_to(ROOT)}")
        print(top_functions(path, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
