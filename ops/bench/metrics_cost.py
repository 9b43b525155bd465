"""The cost of metrics on the lookup round trip: metrics off and on, in the same run.

    python -m ops.bench.metrics_cost [--rounds 6] [--misses 200] [--hits 2000]

Misses (the queue and a worker, both sides' metrics): two prefork workers (`-c 2`, queue
`lookups`) run side by side on one throwaway database, each with a Redis prefix of its own,
one with ZIPSCORE_METRICS=false and one with it true (its node's port scraped every second
from a thread here, harsher than Prometheus's usual 15 s). Rounds alternate between them,
each in a fresh producer process with its side's setting, so drift on a shared machine falls
on both alike. A miss is `Client.lookup` of a zipcode not asked before.

Hits (the producer's metrics only): in each of those processes, blocks of `Client.lookup` of
cached zipcodes alternate recording off and on in the same process, so nothing but the
setting differs.

The end-to-end differences are printed with the rounds' spread; the gate (exit status) is
the instrumentation's own time, measured alone over 100 000 calls, against the off side's
median round trip: under 5 %.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from ops import celery_worker
from ops.bench.environment import ROOT, environment
from ops.drills.servers import free_port

LIMIT_PERCENT = 5.0


def child(first: int, misses: int, hits: int) -> None:
    """One round, in this process: `misses` new zipcodes from `first`, then `hits` cached
    ones in blocks alternating producer metrics off and on."""
    from producer import metrics as producer_metrics
    from producer.client import Client

    client = Client()
    client.lookup(9999)  # warm the connections (not measured)
    zipcodes = list(range(first, first + misses))
    timings: dict[str, list[float]] = {"miss": [], "hit off": [], "hit on": []}
    for zipcode in zipcodes:
        began = time.perf_counter()
        client.lookup(zipcode)
        timings["miss"].append((time.perf_counter() - began) * 1000)
    block = 100
    for index in range(hits):
        on = (index // block) % 2 == 1
        producer_metrics.record(on)
        began = time.perf_counter()
        client.lookup(zipcodes[index % len(zipcodes)])
        timings["hit on" if on else "hit off"].append((time.perf_counter() - began) * 1000)
    print(json.dumps(timings))


def micro(calls: int) -> None:
    """The instrumentation alone, in this process: microseconds a question's and a task's
    metrics take, recorded (multiprocess files, as a worker) against not recorded."""
    from types import SimpleNamespace

    from producer import metrics as producer_metrics
    from worker.contract.settings import Settings
    from worker.telemetry import metrics as worker_metrics

    task = SimpleNamespace(
        name="zipcodes.lookup",
        request=SimpleNamespace(delivery_info={"routing_key": "lookups"}),
    )
    answer = SimpleNamespace(exists=True)

    def question() -> None:
        with producer_metrics.asked("lookup") as asked:
            asked.answered(answer)

    def task_run() -> None:
        worker_metrics._on_prerun(task_id="t", task=task)
        worker_metrics._on_success(sender=task, result={})
        worker_metrics._on_postrun(task_id="t", task=task)

    def per_call(call: object) -> float:
        began = time.perf_counter()
        for _ in range(calls):
            call()  # type: ignore[operator]
        return (time.perf_counter() - began) / calls * 1e6

    producer_metrics.record(False)
    off = {"question": per_call(question), "task": per_call(task_run)}
    producer_metrics.record(True)
    on = {"question": per_call(question)}  # a producer's values: in process memory
    # A worker's: in its node's multiprocess files, as under the prefork pool.
    directory = Path(tempfile.mkdtemp(prefix="zipscore-metrics-micro-"))
    worker_metrics.start("micro@bench", Settings(metrics=True, metrics_dir=directory))
    on["task"] = per_call(task_run)
    from worker.contract import tracing

    def traced() -> None:
        with tracing.span("zipscore.lookup"):
            pass

    tracing_off = per_call(traced)  # traces off: what every question pays for them
    print(json.dumps({"off": off, "on": on, "tracing off": tracing_off}))


def run_round(env: dict[str, str], first: int, misses: int, hits: int) -> dict[str, list[float]]:
    command = [sys.executable, "-m", "ops.bench.metrics_cost", "--child", str(first)]
    command += ["--misses", str(misses), "--hits", str(hits)]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    timings: dict[str, list[float]] = json.loads(done.stdout.strip().splitlines()[-1])
    return timings


def scrape_every_second(url: str, stop: threading.Event, count: list[int]) -> None:
    while not stop.wait(1.0):
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 (loopback)
                answer.read()
            count[0] += 1
        except OSError:
            pass


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--misses", type=int, default=200)
    parser.add_argument("--hits", type=int, default=2000)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--micro", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.misses, args.hits)
        return 0
    if args.micro is not None:
        micro(args.micro)
        return 0
    if args.rounds * args.misses > 8_000:
        parser.error("--rounds times --misses must stay under 8000 (the zipcodes to ask)")
    results, scrapes = measure(args.rounds, args.misses, args.hits)
    print(
        f"lookup round trip, metrics off and on: {args.rounds} alternating rounds of "
        f"{args.misses} misses and {args.hits} hits each, prefork workers (-c 2), "
        f"the 'on' worker scraped {scrapes} times (every second)"
    )
    return report(results)


Results = dict[str, list[list[float]]]


def measure(rounds: int, misses: int, hits: int) -> tuple[Results, int]:
    """Timings by path and setting ("miss off", "miss on", "hit off", "hit on"), a list per
    round; and how many scrapes the 'on' worker answered meanwhile."""
    workdir = Path(tempfile.mkdtemp(prefix="zipscore-metrics-cost-"))
    port = free_port()
    results: Results = {key: [] for key in ("miss off", "miss on", "hit off", "hit on")}
    with environment() as env:
        sides = {
            "off": {**env.vars, "ZIPSCORE_REDIS_PREFIX": f"{env.prefix}-off"},
            "on": {
                **env.vars,
                "ZIPSCORE_REDIS_PREFIX": f"{env.prefix}-on",
                "ZIPSCORE_METRICS": "true",
                "ZIPSCORE_METRICS_PORT": str(port),
                "ZIPSCORE_METRICS_DIR": str(workdir / "metrics"),
            },
        }
        sides["off"]["ZIPSCORE_METRICS"] = "false"
        workers = [
            celery_worker.start(
                side,
                workdir / f"worker-{name}.log",
                celery_worker.command("lookups", f"bench-metrics-{name}-{env.run_id}"),
            )
            for name, side in sides.items()
        ]
        stop, scrapes = threading.Event(), [0]
        url = f"http://127.0.0.1:{port}/metrics"
        threading.Thread(target=scrape_every_second, args=(url, stop, scrapes), daemon=True).start()
        try:
            for number in range(rounds):
                for name in ("off", "on") if number % 2 == 0 else ("on", "off"):
                    timings = run_round(sides[name], 1000 + number * misses, misses, hits)
                    results[f"miss {name}"].append(timings["miss"])
                    results["hit off"].append(timings["hit off"])
                    results["hit on"].append(timings["hit on"])
        finally:
            stop.set()
            for process in workers:
                process.terminate()
            for process in workers:
                process.wait(30)
    return results, scrapes[0]


def report(results: Results) -> int:
    header = f"{'path':<6}{'metrics':<9}{'n':>7}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}"
    print(f"{header}{'round means, median (min-max)':>34}")
    p50_off = {}
    for path in ("miss", "hit"):
        medians = {}
        for name in ("off", "on"):
            rounds = results[f"{path} {name}"]
            samples = [value for one in rounds for value in one]
            means = [statistics.fmean(one) for one in rounds]
            medians[name] = statistics.median(means)
            if name == "off":
                p50_off[path] = percentile(samples, 0.5)
            spread = f"{medians[name]:.3f} ({min(means):.3f}-{max(means):.3f})"
            print(
                f"{path:<6}{name:<9}{len(samples):>7}{percentile(samples, 0.5):>9.3f}"
                f"{percentile(samples, 0.99):>9.3f}{statistics.fmean(samples):>9.3f}{spread:>34}"
            )
        cost = (medians["on"] - medians["off"]) / medians["off"] * 100
        print(f"{path:<6}on against off, end to end (median of round means): {cost:+.1f} %")
    added = report_alone(100_000)
    worst = 0.0
    for path, micros in (("miss", added["question"] + added["task"]), ("hit", added["question"])):
        share = micros / (p50_off[path] * 1000) * 100
        worst = max(worst, share)
        print(
            f"{path:<6}instrumentation {micros:.1f} us of the {p50_off[path]:.3f} ms p50 round"
            f" trip: {share:.1f} % (limit {LIMIT_PERCENT:.0f} %)"
        )
    return 0 if worst < LIMIT_PERCENT else 1


def report_alone(calls: int) -> dict[str, float]:
    """Print and return the microseconds the instrumentation adds, per question and task."""
    command = [sys.executable, "-m", "ops.bench.metrics_cost", "--micro", str(calls)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    alone = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"instrumentation alone ({calls} calls each, microseconds a call):")
    added = {}
    for part, where in (("question", "producer, per question"), ("task", "worker, per task")):
        off, on = alone["off"][part], alone["on"][part]
        added[part] = on - off
        print(f"  {where:<24} off {off:6.2f}  on {on:6.2f}  (+{on - off:.2f} us)")
    print(f"  {'a trace span, traces off':<24} {alone['tracing off']:6.2f} us")
    return added


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
