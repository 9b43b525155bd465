"""Batch scoring benchmark: the floor, the naive design and zipscore, side by side.

    make bench                                   # everything (1M and 5M rows)
    python -m ops.bench.batch_bench --rows 200000 --skip-5m
    python -m ops.bench.batch_bench --profile    # also reports/bench-*.prof, top functions

Prints one table:
 (1) the floor: one process, csv.reader -> dict lookup -> csv.writer, no queue;
 (2) naive: one Celery task per row (`zipcodes.lookup`) on a 5,000-row sample, through a
     real `celery -A worker worker -c 2`;
 (3) zipscore: `zipscore score` end to end (a subprocess) with a real 2-process batch worker
     (`celery -A worker worker -Q batch -c 2`), with the peak RSS of the producer and of
     every worker process (psutil, sampled every 20 ms);
then the ratios (3)/(1) >= 0.5 and (3)/(2) >= 300, RSS < 150 MB per process, and the
5,000,000-row run's peak RSS within 10 % of the 1,000,000-row one.

Then the peers, side by side on a realistic portfolio (`customer_id,name,zipcode,premium`,
names with commas and doubled quotes, 1 % bad zipcodes; 2,000,000 rows by default), and again
on the same rows with a UTF-8 BOM and CRLF line endings: the
csv floor, DuckDB and Polars (ops/bench/peers.py) and `zipscore score`, each timed as a whole
process (interpreter start and imports included), five interleaved repetitions, medians.
zipscore runs against one -c 2 batch worker started before the rounds and warmed by one small
job, as a deployed service's workers are. The ratios to DuckDB and Polars are printed as
goals; they do not set the exit code.

Everything runs against a throwaway database (created, migrated, loaded with the sample
table, dropped) and a Redis prefix of its own; input files go to --workdir (under /tmp).
Needs the dev environment (psutil).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import pstats
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from ops import celery_worker
from ops.bench import peers
from ops.bench.environment import ROOT, Env, environment, worker, zipscore_exe
from ops.bench.inputs import expanded_table, generate, generate_portfolio

MB = 1024 * 1024
FLOOR_RATIO, NAIVE_RATIO, RSS_LIMIT_MB, RSS_DRIFT = 0.5, 300.0, 150.0, 0.10


# -- (1) the floor --------------------------------------------------------------------------


def floor(source: Path, target: Path, table: Path) -> float:
    """Single process: csv read, dict lookup, csv write (the csv peer, in process). Rows/s."""
    started = time.perf_counter()
    rows = peers.with_csv(table, source, target)
    return rows / (time.perf_counter() - started)


# -- (2) naive ------------------------------------------------------------------------------


def naive(env: Env, source: Path, rows: int, workdir: Path) -> float:
    """One `zipcodes.lookup` task per row through a 2-process worker. Returns rows/s."""
    code = f"""
import csv, itertools, json, sys, time
from celery.result import ResultSet
from worker.celery_app import app
with open({str(source)!r}, newline="") as f:
    reader = csv.reader(f); column = next(reader).index("zipcode")
    zipcodes = [row[column] for row in itertools.islice(reader, {rows})]
started = time.perf_counter()
results = ResultSet([app.send_task("zipcodes.lookup", args=[z]) for z in zipcodes])
results.join_native(timeout=300)  # results collected in bulk, the fastest way Celery offers
print(json.dumps(len(zipcodes) / (time.perf_counter() - started)))
"""
    with worker(env, "lookups", workdir / "naive-worker.log", "-c", "2"):
        done = subprocess.run(
            [sys.executable, "-c", code],
            env=env.vars,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    return float(done.stdout.strip().splitlines()[-1])


# -- (3) zipscore ---------------------------------------------------------------------------


@dataclass
class Peaks:
    """Peak RSS per process (by pid and role), sampled by a thread."""

    roles: dict[int, str] = field(default_factory=dict)
    rss: dict[int, int] = field(default_factory=dict)

    def watch(self, process: psutil.Process, role: str, children: bool) -> threading.Event:
        stop = threading.Event()

        def run() -> None:
            while not stop.is_set():
                procs = [(process, role)]
                if children:
                    with contextlib.suppress(psutil.Error):
                        procs += [(c, f"{role} child") for c in process.children()]
                for proc, name in procs:
                    with contextlib.suppress(psutil.Error):
                        rss = proc.memory_info().rss
                        self.roles[proc.pid] = name
                        self.rss[proc.pid] = max(self.rss.get(proc.pid, 0), rss)
                stop.wait(0.02)

        threading.Thread(target=run, daemon=True).start()
        return stop

    def by_role(self) -> list[tuple[str, float]]:
        return sorted((self.roles[p], r / MB) for p, r in self.rss.items())


@dataclass
class ScoreRun:
    rows: int
    seconds: float
    rows_per_second: float
    wall_seconds: float
    peaks: list[tuple[str, float]]


def zipscore(env: Env, source: Path, workdir: Path, profile: bool) -> ScoreRun:
    """`zipscore score` end to end with a fresh 2-process batch worker."""
    with worker(env, "batch", workdir / "batch-worker.log", "-c", "2") as proc:
        time.sleep(0.5)
        return score_with(env, source, workdir, proc, profile=profile)


def score_with(
    env: Env,
    source: Path,
    workdir: Path,
    proc: psutil.Process,
    *,
    profile: bool = False,
    watch: bool = True,
) -> ScoreRun:
    """`zipscore score` end to end while the batch worker `proc` runs; with `watch`, the
    peak RSS of every process (a sampling thread, which takes some CPU of its own)."""
    target = workdir / f"{source.stem}.scored.csv"
    peaks = Peaks()
    stop_worker = peaks.watch(proc, "worker", children=True) if watch else threading.Event()
    command = [zipscore_exe(), "score", str(source), "-o", str(target), "--json"]
    if profile:
        out = ROOT / "reports" / "bench-producer.prof"
        out.parent.mkdir(exist_ok=True)
        command = [sys.executable, "-m", "cProfile", "-o", str(out), "-m", "producer.cli.main"]
        command += ["score", str(source), "-o", str(target), "--json"]
    started = time.perf_counter()
    producer = psutil.Popen(
        command, env=env.vars, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    stop_producer = (
        peaks.watch(producer, "producer", children=False) if watch else threading.Event()
    )
    stdout, stderr = producer.communicate()
    wall = time.perf_counter() - started
    stop_producer.set()
    stop_worker.set()
    if producer.returncode:
        raise RuntimeError(stderr.decode()[-2000:])
    summary = json.loads(stdout.decode().strip().splitlines()[-1])
    target.unlink(missing_ok=True)
    return ScoreRun(
        summary["rows"], summary["seconds"], summary["rows_per_second"], wall, peaks.by_role()
    )


def profile_worker(env: Env, source: Path, workdir: Path) -> Path:
    """A solo-pool batch worker under cProfile while `zipscore score` runs once."""
    out = ROOT / "reports" / "bench-worker.prof"
    log = workdir / "profiled-worker.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "cProfile", "-o", str(out), "-m", "celery", "-A"),
                *("worker", "worker", "-Q", "batch", "--pool", "solo"),
                *("-n", f"prof-{env.run_id}@%h", "--loglevel", "INFO"),
            ],
            cwd=ROOT,
            env=env.vars,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    celery_worker.wait_ready(process, log)
    target = workdir / "profiled.scored.csv"
    subprocess.run(
        [zipscore_exe(), "score", str(source), "-o", str(target), "--json"],
        env=env.vars,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    process.send_signal(signal.SIGTERM)
    process.wait(60)
    target.unlink(missing_ok=True)
    return out


# -- the peers, side by side ----------------------------------------------------------------

PEERS = ("csv", "duckdb", "polars")
PEER_LABELS = {
    "csv": "Python csv.reader -> dict -> csv.writer, 1 process",
    "duckdb": "DuckDB, 2 threads, LEFT JOIN, order kept, COPY",
    "polars": "Polars, 2 threads, left join, order kept",
    "zipscore": "zipscore score, one -c 2 batch worker",
}


def peer(design: str, table: Path, source: Path, target: Path) -> float:
    """One peer as a whole process; returns its wall seconds."""
    paths = (table, source, target)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(ROOT / "ops" / "bench" / "peers.py"), design, *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"{design}: {done.stderr[-2000:]}")
    target.unlink(missing_ok=True)
    return seconds


def side_by_side(
    env: Env, source: Path, rows: int, workdir: Path, repeats: int, *, shape: str = ""
) -> list[str]:
    """Every design on one file, `repeats` interleaved rounds; the table of medians.
    `shape`: what else sets the file apart, for the table's title."""
    table = workdir / "risk-table.expanded.csv"
    seconds: dict[str, list[float]] = {name: [] for name in (*PEERS, "zipscore")}
    # The batch worker runs as a service's does, started once and warmed by one small job
    # (its pool processes' connections and table copy); `zipscore score` is timed as a user
    # runs it against that service.
    warmup = workdir / "warmup.csv"
    warmup.write_text("customer_id,name,zipcode,premium\nC1,Jan,9000,100.00\n")
    with worker(env, "batch", workdir / "side-by-side-worker.log", "-c", "2") as proc:
        score_with(env, warmup, workdir, proc)
        for round_ in range(repeats):
            print(f"side by side, round {round_ + 1} of {repeats} ...", file=sys.stderr)
            for design in PEERS:
                out = workdir / f"{design}.out.csv"
                seconds[design].append(peer(design, table, source, out))
            run = score_with(env, source, workdir, proc, watch=False)  # as the peers: no sampler
            seconds["zipscore"].append(run.wall_seconds)
    median = {name: statistics.median(values) for name, values in seconds.items()}
    floor_seconds, duckdb, polars = median["csv"], median["duckdb"], median["polars"]
    lines = [
        "",
        f"side by side, {datetime.date.today().isoformat()}: {rows:,} rows of "
        f"customer_id,name,zipcode,premium ({source.stat().st_size / MB:.0f} MB; quoted names "
        f"with commas and doubled quotes, 1 % bad zipcodes{shape}); whole processes, interpreter "
        f"start and imports included; median of {repeats} interleaved rounds; zipscore "
        "against a running -c 2 batch worker warmed by one small job",
        f"{'design':<52} {'seconds':>8} {'rows/s':>11} {'vs csv':>7} {'vs DuckDB':>10} "
        f"{'vs Polars':>10}",
    ]
    for name, value in median.items():
        lines.append(
            f"{PEER_LABELS[name]:<52} {value:>8.2f} {rows / value:>11,.0f} "
            f"{floor_seconds / value:>6.2f}x {duckdb / value:>9.2f}x {polars / value:>9.2f}x"
        )
    for peer_name, goal in (("duckdb", "goal"), ("polars", "stretch goal")):
        ratio = median[peer_name] / median["zipscore"]
        lines.append(
            f"zipscore / {peer_name:<7} = {ratio:5.2f}x   {goal} >= 1.00x   "
            f"{verdict(ratio >= 1.0)} (not gated)"
        )
    return lines


def top(path: Path, count: int = 12) -> str:
    stream = io.StringIO()
    pstats.Stats(str(path), stream=stream).sort_stats("tottime").print_stats(count)
    return stream.getvalue()


# -- the table ------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--naive-rows", type=int, default=5_000)
    parser.add_argument("--skip-5m", action="store_true", help="skip the 5,000,000-row run")
    parser.add_argument("--profile", action="store_true", help="cProfile producer and worker")
    parser.add_argument("--peer-rows", type=int, default=2_000_000, help="rows, side by side")
    parser.add_argument("--repeats", type=int, default=5, help="rounds of the side-by-side")
    parser.add_argument("--skip-peers", action="store_true", help="skip the side-by-side")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/zipscore-bench"))  # noqa: S108
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"generating inputs in {args.workdir} ...", file=sys.stderr)
    source = generate(args.workdir / f"portfolio-{args.rows}.csv", args.rows)
    big = None if args.skip_5m else generate(args.workdir / "portfolio-5000000.csv", 5_000_000)
    realistic = windows = None
    if not args.skip_peers:
        realistic = generate_portfolio(
            args.workdir / f"customers-{args.peer_rows}.csv", args.peer_rows
        )
        windows = generate_portfolio(
            args.workdir / f"customers-{args.peer_rows}-bom-crlf.csv", args.peer_rows, windows=True
        )

    print("(1) floor ...", file=sys.stderr)
    table = expanded_table(args.workdir / "risk-table.expanded.csv")
    floor_rate = max(floor(source, args.workdir / "floor.out.csv", table) for _ in range(2))
    (args.workdir / "floor.out.csv").unlink(missing_ok=True)
    with environment() as env:
        print("(2) naive ...", file=sys.stderr)
        naive_rate = naive(env, source, args.naive_rows, args.workdir)
        print("(3) zipscore ...", file=sys.stderr)
        run = zipscore(env, source, args.workdir, profile=False)
        big_run = zipscore(env, big, args.workdir, profile=False) if big else None
        peers: list[str] = []
        if realistic and windows:
            peers += side_by_side(env, realistic, args.peer_rows, args.workdir, args.repeats)
            peers += side_by_side(
                env, windows, args.peer_rows, args.workdir, args.repeats, shape="; a BOM and CRLF"
            )
        profiles: list[Path] = []
        if args.profile:
            zipscore(env, source, args.workdir, profile=True)
            profiles = [ROOT / "reports" / "bench-producer.prof"]
            profiles.append(profile_worker(env, source, args.workdir))

    rate = run.rows_per_second
    peak = max(mb for _, mb in run.peaks)
    lines = [
        "",
        f"{'design':<52} {'rows':>10} {'rows/s':>12}",
        f"{'(1) floor: 1 process, csv -> dict -> csv':<52} {args.rows:>10,} {floor_rate:>12,.0f}",
        f"{'(2) naive: 1 Celery task per row, 2 processes':<52} "
        f"{args.naive_rows:>10,} {naive_rate:>12,.0f}",
        f"{'(3) zipscore score, batch worker -c 2':<52} {run.rows:>10,} {rate:>12,.0f}"
        f"   ({run.seconds:.2f} s in the job, {run.wall_seconds:.2f} s with interpreter start)",
    ]
    if big_run:
        lines.append(
            f"{'(3) zipscore score, 5M rows':<52} {big_run.rows:>10,} "
            f"{big_run.rows_per_second:>12,.0f}   ({big_run.seconds:.2f} s in the job)"
        )
    lines += ["", "peak RSS (MB)      " + ("1M run".rjust(8)) + ("   5M run" if big_run else "")]
    for i, (role, mb) in enumerate(run.peaks):
        other = f" {big_run.peaks[i][1]:8.1f}" if big_run and i < len(big_run.peaks) else ""
        lines.append(f"  {role:<17}{mb:8.1f}{other}")
    lines += [
        "",
        f"(3)/(1) = {rate / floor_rate:6.2f}   target >= {FLOOR_RATIO}   "
        f"{verdict(rate / floor_rate >= FLOOR_RATIO)}",
        f"(3)/(2) = {rate / naive_rate:6.0f}   target >= {NAIVE_RATIO:.0f}   "
        f"{verdict(rate / naive_rate >= NAIVE_RATIO)}",
        f"peak RSS {peak:.1f} MB   target < {RSS_LIMIT_MB:.0f} MB per process   "
        f"{verdict(peak < RSS_LIMIT_MB)}",
    ]
    passed = rate / floor_rate >= FLOOR_RATIO and rate / naive_rate >= NAIVE_RATIO
    passed = passed and peak < RSS_LIMIT_MB
    if big_run:
        big_peak = max(mb for _, mb in big_run.peaks)
        drift = max(
            abs(b - s) / s for (_, s), (_, b) in zip(run.peaks, big_run.peaks, strict=False)
        )
        lines.append(
            f"5M vs 1M peak RSS, largest change of any process: {100 * drift:.1f} %   "
            f"target <= {100 * RSS_DRIFT:.0f} %   {verdict(drift <= RSS_DRIFT)}"
        )
        passed = passed and drift <= RSS_DRIFT and big_peak < RSS_LIMIT_MB
    print("\n".join(lines + peers))
    for path in profiles:
        print(f"\n== {path.name} (top functions by own time)\n{top(path)}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
