"""Tests of the per-test resource monitor plugin (tests/support/resources.py), through pytester.

Memory is measured in subprocess runs so the figures are isolated; thread shutdown is checked in
in-process runs, where the sampler threads can be inspected after the run returns. Reports go to
a directory inside pytester's tmp path.
"""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.support.paths import ROOT as REPO_ROOT

pytest_plugins = ["pytester"]

THREAD_PREFIX = "pytest-resources-sampler"

MEMORY_TESTS = """
import time

import pytest


def hold_200mb():
    block = bytearray(200 * 1024 * 1024)
    for offset in range(0, len(block), 4096):
        block[offset] = 1
    time.sleep(0.3)


def test_alloc():
    hold_200mb()


@pytest.mark.budget(rss_mb=100)
def test_alloc_over_budget():
    hold_200mb()
"""

FD_TESTS = """
import pytest

LEAKED = []


def test_leak():
    LEAKED.append(open(__file__))


@pytest.mark.budget(fds=0)
def test_leak_over_budget():
    LEAKED.append(open(__file__))


@pytest.mark.budget(fds=0)
def test_close_within_budget():
    with open(__file__) as handle:
        handle.read()
"""

CHILD_TEST = """
import subprocess
import sys


def test_child():
    code = "b=bytearray(150*1024*1024); import time; time.sleep(1)"
    subprocess.Popen([sys.executable, "-c", code]).wait()
"""

SAMPLER_PROBE = """
import threading
from pathlib import Path


def test_probe():
    names = [t.name for t in threading.enumerate() if t.name.startswith("{prefix}")]
    Path("samplers.txt").write_text("\\n".join(names))
    {body}
"""


@pytest.fixture
def report_dir(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make the plugin importable in-process and in subprocesses; return the report directory.

    Inner runs load no installed plugins: pytest-celery and friends cost seconds per run.
    """
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.syspathinsert(REPO_ROOT)
    pythonpath = [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(pythonpath))
    return pytester.path / "resource-reports"


def plugin_args(report_dir: Path, *extra: str) -> list[str]:
    """Return the arguments that load the plugin and keep its reports in ``report_dir``."""
    return ["-p", "tests.support.resources", f"--resources-dir={report_dir}", *extra]


def load_records(report_dir: Path) -> dict[str, dict[str, Any]]:
    """Return the records of ``latest.json`` by nodeid."""
    data = json.loads((report_dir / "latest.json").read_text())
    return {record["nodeid"]: record for record in data["tests"]}


def test_memory_growth_is_reported_and_budgeted(
    pytester: pytest.Pytester, report_dir: Path
) -> None:
    pytester.makepyfile(test_memory=MEMORY_TESTS)
    result = pytester.runpytest_subprocess(*plugin_args(report_dir))
    result.assert_outcomes(passed=1, failed=1)
    record = load_records(report_dir)["test_memory.py::test_alloc"]
    assert record["peak_rss_mb"] >= 200
    assert record["rss_growth_mb"] >= 190
    message = re.search(r"budget exceeded: RSS growth (\d+\.\d) MB > 100 MB", result.stdout.str())
    assert message is not None
    assert float(message.group(1)) >= 190


def test_leaked_fd_is_flagged_and_budgeted(pytester: pytest.Pytester, report_dir: Path) -> None:
    pytester.makepyfile(test_fds=FD_TESTS)
    result = pytester.runpytest_subprocess(*plugin_args(report_dir))
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*test_leak_over_budget*", "*budget exceeded: leaked fds 1 > 0*"])
    records = load_records(report_dir)
    assert records["test_fds.py::test_leak"]["fds_leaked"] >= 1
    assert records["test_fds.py::test_leak_over_budget"]["outcome"] == "failed"
    assert records["test_fds.py::test_close_within_budget"]["fds_leaked"] == 0


def test_seconds_budget_fails_a_slow_test(pytester: pytest.Pytester, report_dir: Path) -> None:
    pytester.makepyfile(
        """
        import time

        import pytest


        @pytest.mark.budget(seconds=0.2)
        def test_slow():
            time.sleep(0.5)
        """
    )
    result = pytester.runpytest_inprocess(*plugin_args(report_dir))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*budget exceeded: wall time 0.5* s > 0.2 s*"])


def test_children_are_counted(pytester: pytest.Pytester, report_dir: Path) -> None:
    pytester.makepyfile(test_child=CHILD_TEST)
    result = pytester.runpytest_subprocess(*plugin_args(report_dir))
    result.assert_outcomes(passed=1)
    record = load_records(report_dir)["test_child.py::test_child"]
    assert record["rss_growth_mb"] >= 150
    assert record["samples"] > 0


@pytest.mark.parametrize(
    ("body", "exit_code", "outcome"),
    [
        ("assert False", pytest.ExitCode.TESTS_FAILED, "failed"),
        ("raise KeyboardInterrupt", pytest.ExitCode.INTERRUPTED, "interrupted"),
    ],
)
def test_sampler_stops_at_session_end(
    pytester: pytest.Pytester,
    report_dir: Path,
    body: str,
    exit_code: pytest.ExitCode,
    outcome: str,
) -> None:
    pytester.makepyfile(test_probe=SAMPLER_PROBE.format(prefix=THREAD_PREFIX, body=body))
    before = {thread.name for thread in threading.enumerate()}
    result = pytester.runpytest_inprocess(*plugin_args(report_dir), no_reraise_ctrlc=True)
    assert result.ret == exit_code
    started = set((pytester.path / "samplers.txt").read_text().split()) - before
    assert started, "no sampler thread was running during the test"
    assert not started & {thread.name for thread in threading.enumerate()}
    assert load_records(report_dir)["test_probe.py::test_probe"]["outcome"] == outcome


def test_live_mode_streams_samples(pytester: pytest.Pytester, report_dir: Path) -> None:
    pytester.makepyfile(test_live="import time\n\ndef test_sleeps():\n    time.sleep(0.3)\n")
    result = pytester.runpytest_subprocess(*plugin_args(report_dir, "--resources-live"))
    result.assert_outcomes(passed=1)
    live = [line for line in result.errlines if line.startswith("[resources] test_live.py::")]
    assert len(live) >= 2
    assert re.search(r"rss=\d+\.\dMB fds=\d+ threads=\d+$", live[0])


def test_summary_and_report_files(pytester: pytest.Pytester, report_dir: Path) -> None:
    pytester.makepyfile(test_quick="def test_a():\n    pass\n\ndef test_b():\n    pass\n")
    result = pytester.runpytest_inprocess(*plugin_args(report_dir, "--resources-interval=30"))
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*= heaviest tests (resource monitor) =*",
            "by peak RSS:",
            "*peak MB*growth MB*wall s*",
            "*test_quick.py::test_a",
            "by wall time:",
            f"resource report: {report_dir}*.json",
        ]
    )
    records = load_records(report_dir)
    assert set(records) == {"test_quick.py::test_a", "test_quick.py::test_b"}
    assert records["test_quick.py::test_a"]["samples"] == 0
    assert records["test_quick.py::test_a"]["wall_seconds"] >= 0
    assert len(list(report_dir.glob("*-*.json"))) == 1


def test_invalid_budget_is_a_setup_error(pytester: pytest.Pytester, report_dir: Path) -> None:
    pytester.makepyfile("import pytest\n\n@pytest.mark.budget(rss=1)\ndef test_typo():\n    pass\n")
    result = pytester.runpytest_inprocess(*plugin_args(report_dir))
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*invalid budget marker: unknown budget key(s)*'rss'*"])


def test_no_resources_disables_everything(pytester: pytest.Pytester, report_dir: Path) -> None:
    pytester.makepyfile(
        "import pytest\n\n@pytest.mark.budget(seconds=0)\ndef test_over():\n    pass\n"
    )
    result = pytester.runpytest_inprocess(*plugin_args(report_dir, "--no-resources"))
    result.assert_outcomes(passed=1)
    assert "heaviest tests" not in result.stdout.str()
    assert not report_dir.exists()
