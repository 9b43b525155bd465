"""Per-test resource monitor for pytest, built on psutil.

From the start of each test's setup to the end of its teardown, a daemon thread samples this
process and all of its descendants (e.g. worker subprocesses the test started): CPU time (user +
system, including reaped children), summed RSS, open file descriptors of this process and thread
count. Start and end are also read directly, so short tests get figures without any sample.
Each run writes a JSON report and ends with a "heaviest tests" table.

Load it with ``pytest_plugins = ["tests.support.resources"]`` in the root conftest, or with
``-p tests.support.resources``. Options:

``--resources-interval SECONDS``
    Sampling interval (ini ``resources_interval``, default 0.05).
``--resources-dir DIR``
    Report directory (ini ``resources_dir``, default ``reports/resources`` under the rootdir).
    Each run writes ``<timestamp>-<pid>.json`` and ``latest.json`` there; every record holds
    nodeid, outcome, wall_seconds, cpu_seconds, peak_rss_mb, rss_growth_mb, fds_leaked,
    threads_peak and samples (the number of background samples).
``--resources-live``
    Print every sample to stderr while the test runs.
``--no-resources``
    Disable the monitor; budgets are then not enforced.

Marker ``@pytest.mark.budget(rss_mb=None, seconds=None, fds=None, cpu_seconds=None)`` fails a
test that exceeds any limit given, naming the measured figure and the limit. ``rss_mb`` limits
the peak RSS growth above the RSS at the start of the test (absolute RSS includes the interpreter
baseline), ``seconds`` wall time, ``cpu_seconds`` CPU time, and ``fds`` the descriptors the test
body opened and left open. Budgets are checked when the test body returns, so they cover setup
and call but not teardown; the report covers all three phases. Under pytest-xdist each worker
writes its own report and the controller writes none.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Generator, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import psutil
import pytest

MB = 1024 * 1024
TOP = 10
THREAD_PREFIX = "pytest-resources-sampler"
BUDGET_KEYS = ("rss_mb", "seconds", "fds", "cpu_seconds")
BUDGET_HELP = (
    "budget(rss_mb=None, seconds=None, fds=None, cpu_seconds=None): fail the test if it exceeds "
    "a limit. rss_mb is the peak RSS growth above the RSS at the start of the test, seconds is "
    "wall time, cpu_seconds CPU time (children included), fds the file descriptors the test body "
    "leaves open. Checked when the test body returns (setup + call)."
)
BUDGET_TEMPLATES = {
    "rss_mb": "RSS growth {value:.1f} MB > {limit:g} MB (peak RSS {usage.peak_rss_mb:.1f} MB)",
    "seconds": "wall time {value:.2f} s > {limit:g} s",
    "fds": "leaked fds {value} > {limit:g}",
    "cpu_seconds": "CPU time {value:.2f} s > {limit:g} s",
}


@dataclass(frozen=True)
class Sample:
    """One reading of the process tree."""

    wall: float
    cpu: float
    rss: int
    fds: int
    threads: int


@dataclass(frozen=True)
class Usage:
    """Resource figures of one test, as reported and checked against budgets."""

    wall_seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    rss_growth_mb: float
    fds_leaked: int
    threads_peak: int

    def figure(self, key: str) -> float:
        """Return the figure a budget key limits."""
        return {
            "rss_mb": self.rss_growth_mb,
            "seconds": self.wall_seconds,
            "fds": self.fds_leaked,
            "cpu_seconds": self.cpu_seconds,
        }[key]


@dataclass(frozen=True)
class Result:
    """The final record of one test."""

    nodeid: str
    outcome: str
    usage: Usage
    samples: int

    def as_json(self) -> dict[str, object]:
        """Return the flat JSON record."""
        return {
            "nodeid": self.nodeid,
            "outcome": self.outcome,
            **asdict(self.usage),
            "samples": self.samples,
        }


class ProcessTree:
    """Reads the resource usage of a process and its live descendants."""

    def __init__(self, pid: int) -> None:
        self._root = psutil.Process(pid)
        self._handles: dict[int, psutil.Process] = {}
        self._lock = threading.Lock()
        # The kernel's per-thread child lists cost microseconds; psutil's children() reads
        # /proc/<pid>/stat of every process on the machine, milliseconds per sample.
        self._kernel_lists = os.path.exists(f"/proc/{pid}/task/{pid}/children")

    def descendants(self) -> list[psutil.Process]:
        """Return handles on the live descendants, reusing those from the previous call."""
        if not self._kernel_lists:
            try:
                return self._root.children(recursive=True)
            except psutil.Error:
                return []
        pids: list[int] = []
        pending = [self._root.pid]
        while pending:
            found = _child_pids(pending.pop())
            pids += found
            pending += found
        handles: dict[int, psutil.Process] = {}
        for pid in pids:
            try:
                handles[pid] = self._handles.get(pid) or psutil.Process(pid)
            except psutil.Error:
                continue
        self._handles = handles
        return list(handles.values())

    def sample(self) -> Sample:
        """Sum CPU, RSS and threads over the tree; count open fds of the root process only."""
        with self._lock:
            cpu, rss, threads = 0.0, 0, 0
            for proc in [self._root, *self.descendants()]:
                try:
                    with proc.oneshot():
                        times = proc.cpu_times()
                        proc_rss = proc.memory_info().rss
                        proc_threads = proc.num_threads()
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                cpu += times.user + times.system + times.children_user + times.children_system
                rss += proc_rss
                threads += proc_threads
            return Sample(time.perf_counter(), cpu, rss, self._root.num_fds(), threads)


def _child_pids(pid: int) -> list[int]:
    """Read the children of ``pid`` from the Linux /proc/<pid>/task/<tid>/children lists."""
    pids: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return pids
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as listing:
                pids += [int(child) for child in listing.read().split()]
        except OSError:
            continue
    return pids


class Recording:
    """Running aggregates of one test, fed by direct readings and by the sampler thread."""

    def __init__(self, nodeid: str, start: Sample) -> None:
        self.nodeid = nodeid
        self.start = start
        self.last = start
        self.peak_rss = start.rss
        self.peak_cpu = start.cpu
        self.peak_threads = start.threads
        self.body_start_fds = start.fds
        self.samples = 0

    def add(self, sample: Sample) -> None:
        """Fold a reading into the aggregates."""
        self.last = sample
        self.peak_rss = max(self.peak_rss, sample.rss)
        self.peak_cpu = max(self.peak_cpu, sample.cpu)
        self.peak_threads = max(self.peak_threads, sample.threads)

    def usage(self, fds_baseline: int | None = None) -> Usage:
        """Return figures up to the last reading; fds are counted from ``fds_baseline``."""
        baseline = self.start.fds if fds_baseline is None else fds_baseline
        return Usage(
            wall_seconds=round(self.last.wall - self.start.wall, 3),
            cpu_seconds=round(max(self.peak_cpu - self.start.cpu, 0.0), 3),
            peak_rss_mb=round(self.peak_rss / MB, 2),
            rss_growth_mb=round((self.peak_rss - self.start.rss) / MB, 2),
            fds_leaked=max(self.last.fds - baseline, 0),
            threads_peak=self.peak_threads,
        )


def parse_budget(marks: Iterable[pytest.Mark]) -> dict[str, float]:
    """Merge ``budget`` markers given closest first; a closer ``None`` removes a limit."""
    limits: dict[str, float] = {}
    for mark in reversed(list(marks)):
        if mark.args:
            raise ValueError("budget() takes keyword arguments only")
        unknown = sorted(set(mark.kwargs) - set(BUDGET_KEYS))
        if unknown:
            raise ValueError(f"unknown budget key(s) {unknown}; expected {list(BUDGET_KEYS)}")
        for key, value in mark.kwargs.items():
            if value is None:
                limits.pop(key, None)
            elif isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
                limits[key] = float(value)
            else:
                raise ValueError(f"budget {key} must be a non-negative number, not {value!r}")
    return limits


def budget_breaches(limits: Mapping[str, float], usage: Usage) -> list[str]:
    """Describe each limit that ``usage`` exceeds, with the measured figure and the limit."""
    return [
        BUDGET_TEMPLATES[key].format(value=usage.figure(key), limit=limit, usage=usage)
        for key, limit in limits.items()
        if usage.figure(key) > limit
    ]


def format_table(results: Iterable[Result]) -> list[str]:
    """Format results as a small fixed-width table."""
    lines = [f"{'peak MB':>9} {'growth MB':>9} {'wall s':>8} {'cpu s':>8} {'fds+':>5}  test"]
    for result in results:
        u = result.usage
        lines.append(
            f"{u.peak_rss_mb:>9.1f} {u.rss_growth_mb:>9.1f} {u.wall_seconds:>8.2f} "
            f"{u.cpu_seconds:>8.2f} {u.fds_leaked:>5}  {result.nodeid}"
        )
    return lines


class ResourceMonitor:
    """The registered plugin object: measures each test, enforces budgets, reports."""

    def __init__(self, interval: float, out_dir: Path, live: bool) -> None:
        self.interval = interval
        self.out_dir = out_dir
        self.results: list[Result] = []
        self.report_path: Path | None = None
        self.report_error: str | None = None
        self._tree = ProcessTree(os.getpid())
        self._lock = threading.Lock()
        self._current: Recording | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._outcomes: dict[str, str] = {}
        self._live: TextIO | None = None
        self._owns_live = False
        if live:
            self._open_live_stream()

    def _open_live_stream(self) -> None:
        try:
            # Capture redirects fd 2 while a test runs; a duplicate taken now (at configure
            # time, capture suspended) still points at the terminal.
            self._live = os.fdopen(os.dup(2), "w", buffering=1)
            self._owns_live = True
        except OSError:
            self._live = sys.__stderr__

    def close(self) -> None:
        """Stop the sampler thread and release the live stream; safe to call repeatedly."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(1.0, 10 * self.interval))
        if self._owns_live and self._live is not None:
            self._live.close()
        self._live = None

    def _observe(self) -> Recording | None:
        """Fold a direct reading into the current recording and return it."""
        rec = self._current
        if rec is None:
            return None
        sample = self._tree.sample()
        with self._lock:
            rec.add(sample)
        return rec

    def _begin(self, nodeid: str) -> None:
        rec = Recording(nodeid, self._tree.sample())
        with self._lock:
            self._current = rec
        if self._thread is None and not self._stop.is_set():
            self._thread = threading.Thread(
                target=self._run, name=f"{THREAD_PREFIX}-{os.getpid()}-{id(self):x}", daemon=True
            )
            self._thread.start()

    def _finish(self, nodeid: str, interrupted: bool) -> None:
        rec = self._observe()
        with self._lock:
            self._current = None
        outcome = self._outcomes.pop(nodeid, "unknown")
        if rec is not None:
            self.results.append(
                Result(nodeid, "interrupted" if interrupted else outcome, rec.usage(), rec.samples)
            )

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            rec = self._current
            if rec is None:
                continue
            try:
                sample = self._tree.sample()
            except psutil.Error:
                continue
            with self._lock:
                if self._current is not rec:
                    continue
                rec.add(sample)
                rec.samples += 1
            live = self._live
            if live is not None:
                self._print_live(live, rec, sample)

    @staticmethod
    def _print_live(live: TextIO, rec: Recording, sample: Sample) -> None:
        line = (
            f"[resources] {rec.nodeid} +{sample.wall - rec.start.wall:.2f}s "
            f"cpu={sample.cpu - rec.start.cpu:.2f}s rss={sample.rss / MB:.1f}MB "
            f"fds={sample.fds} threads={sample.threads}\n"
        )
        with contextlib.suppress(OSError, ValueError):
            live.write(line)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(
        self, item: pytest.Item, nextitem: pytest.Item | None
    ) -> Generator[None, object, object]:
        """Record the test from the start of setup to the end of teardown."""
        self._begin(item.nodeid)
        try:
            result = yield
        except BaseException:
            self._finish(item.nodeid, interrupted=True)
            raise
        self._finish(item.nodeid, interrupted=False)
        return result

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        """Validate and stash the test's budget before its fixtures run."""
        try:
            limits = parse_budget(item.iter_markers("budget"))
        except ValueError as exc:
            message = f"invalid budget marker: {exc}"
            raise pytest.fail.Exception(message, pytrace=False) from None
        if limits:
            item.stash[BUDGET_KEY] = limits

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        """Fail the call report of a test that exceeded its budget."""
        report = yield
        limits = item.stash.get(BUDGET_KEY, None)
        if not limits or call.when == "teardown":
            return report
        rec = self._observe()
        if rec is None:
            return report
        if call.when == "setup":
            rec.body_start_fds = rec.last.fds
            return report
        breaches = budget_breaches(limits, rec.usage(fds_baseline=rec.body_start_fds))
        if breaches:
            message = "budget exceeded: " + "; ".join(breaches)
            if report.passed:
                report.outcome = "failed"
                report.longrepr = message
            elif report.failed:
                report.sections.append(("resource budget", message))
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Remember the first non-passing outcome of each test's phases."""
        outcome = "error" if report.failed and report.when != "call" else report.outcome
        if self._outcomes.get(report.nodeid, "passed") == "passed":
            self._outcomes[report.nodeid] = outcome

    def pytest_sessionfinish(self) -> None:
        """Stop sampling and write the JSON report."""
        self.close()
        if self.results:
            self._write_report()

    def _write_report(self) -> None:
        payload = {
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "pid": os.getpid(),
            "interval_seconds": self.interval,
            "tests": [result.as_json() for result in self.results],
        }
        text = json.dumps(payload, indent=2) + "\n"
        path = self.out_dir / f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.json"
        staging = self.out_dir / f".latest-{os.getpid()}.tmp"
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            staging.write_text(text)
            os.replace(staging, self.out_dir / "latest.json")
        except OSError as exc:
            self.report_error = str(exc)
        else:
            self.report_path = path

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """Show the heaviest tests by peak RSS and by wall time."""
        if not self.results:
            return
        tr = terminalreporter
        tr.write_sep("=", "heaviest tests (resource monitor)")
        by_rss = sorted(self.results, key=lambda r: r.usage.peak_rss_mb, reverse=True)
        by_wall = sorted(self.results, key=lambda r: r.usage.wall_seconds, reverse=True)
        for title, ranked in (("by peak RSS", by_rss), ("by wall time", by_wall)):
            tr.write_line(f"{title}:")
            for line in format_table(ranked[:TOP]):
                tr.write_line(f"  {line}")
        if self.report_path is not None:
            tr.write_line(f"resource report: {self.report_path}")
        elif self.report_error is not None:
            tr.write_line(f"resource report not written: {self.report_error}")


MONITOR_KEY = pytest.StashKey[ResourceMonitor]()
BUDGET_KEY = pytest.StashKey[dict[str, float]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the monitor's command-line and ini options."""
    group = parser.getgroup("resources", "per-test resource monitor")
    group.addoption("--no-resources", action="store_true", help="Disable the resource monitor.")
    group.addoption(
        "--resources-interval",
        type=float,
        metavar="SECONDS",
        help="Sampling interval in seconds (default: ini resources_interval, 0.05).",
    )
    group.addoption(
        "--resources-dir",
        metavar="DIR",
        help="Report directory (default: ini resources_dir, reports/resources under the rootdir).",
    )
    group.addoption(
        "--resources-live", action="store_true", help="Print every sample to stderr as it is taken."
    )
    parser.addini("resources_interval", "Resource sampling interval in seconds.", default="0.05")
    parser.addini(
        "resources_dir",
        "Resource report directory, relative to the rootdir.",
        default="reports/resources",
    )


def _interval(config: pytest.Config) -> float:
    raw = config.getoption("resources_interval")
    try:
        value = float(raw if raw is not None else config.getini("resources_interval"))
    except ValueError as exc:
        raise pytest.UsageError(f"invalid resources interval: {exc}") from exc
    if value <= 0:
        raise pytest.UsageError(f"resources interval must be positive, not {value}")
    return value


def _out_dir(config: pytest.Config) -> Path:
    cli = config.getoption("resources_dir")
    if cli:
        return config.invocation_params.dir / Path(cli)
    return config.rootpath / str(config.getini("resources_dir"))


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``budget`` marker and, unless disabled, the monitor."""
    config.addinivalue_line("markers", BUDGET_HELP)
    if config.getoption("no_resources"):
        return
    monitor = ResourceMonitor(
        _interval(config), _out_dir(config), config.getoption("resources_live")
    )
    config.stash[MONITOR_KEY] = monitor
    config.pluginmanager.register(monitor, "resources-monitor")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop the sampler even if the session ended abnormally."""
    monitor = config.stash.get(MONITOR_KEY, None)
    if monitor is not None:
        monitor.close()
        config.pluginmanager.unregister(monitor)
        del config.stash[MONITOR_KEY]
