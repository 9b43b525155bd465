"""Hostile files through the `zipscore` console script: a 900 kB CSV header and a 100 MB
risk-table line are refused in one short line, and the process stays small."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.paths import ROOT

MB = 1024 * 1024


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: bytes
    stderr: bytes
    peak_rss_mb: float


# Runs argv[2:] and writes its peak RSS (kB) to argv[1]. An intermediate process, because
# Linux carries a process's peak RSS across exec: a child spawned from pytest itself would
# report pytest's size, this one reports at most this small wrapper's.
PEAK_RSS_WRAPPER = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
child.returncode = 0
with open(sys.argv[1], "w") as sink:
    sink.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_console(tmp_path: Path, env: dict[str, str], *args: str) -> Run:
    """The console script's outcome and its peak RSS.

    Output goes to files, not pipes: the old behaviour wrote 100 MB to each.
    """
    exe = shutil.which("zipscore", path=str(Path(sys.executable).parent)) or "zipscore"
    out, err, peak = tmp_path / "stdout", tmp_path / "stderr", tmp_path / "peak-rss-kb"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        done = subprocess.run(
            [sys.executable, "-c", PEAK_RSS_WRAPPER, str(peak), exe, *args],
            stdout=stdout, stderr=stderr, env=env, cwd=ROOT, timeout=120, check=False,
        )  # fmt: skip
    return Run(
        done.returncode,
        out.read_bytes()[:100_000],
        err.read_bytes()[:100_000],
        int(peak.read_text()) / 1024,
    )


def test_a_100_mb_table_line_is_one_short_line(e2e_env: dict[str, str], tmp_path: Path) -> None:
    table = tmp_path / "table.csv"
    with table.open("w") as sink:
        sink.write("1000,")
        for _ in range(100):
            sink.write("A" * MB)
        sink.write("\n")
    done = run_console(tmp_path, e2e_env, "db", "load-zipcodes", str(table), "--json")
    assert done.returncode == 2
    # Refused by its size (ZIPSCORE_TABLE_MAX_MB, 64) before its first line is parsed
    assert done.stderr.startswith(b"zipscore: BAD_INPUT_FILE: ")
    assert b"is larger than 64 MB (ZIPSCORE_TABLE_MAX_MB)" in done.stderr
    assert done.stderr.count(b"\n") == 1
    assert len(done.stderr) < 300
    assert len(done.stdout) < 300  # the JSON error; it was 100,000,103 bytes
    assert done.peak_rss_mb < 150, done.peak_rss_mb  # it was 745 MB


def test_a_900_kb_header_is_one_short_line(e2e_env: dict[str, str], tmp_path: Path) -> None:
    source = tmp_path / "wide.csv"
    source.write_text(
        ",".join(letter * 75_000 for letter in "abcdefghijkl") + "\n" + ",".join("1" * 12) + "\n"
    )
    done = run_console(
        tmp_path, e2e_env, "score", str(source), "-o", str(tmp_path / "out.csv"), "--json"
    )
    assert done.returncode == 2
    assert done.stderr.startswith(b"zipscore: BAD_INPUT_FILE: ")
    assert done.stderr.count(b"\n") == 1
    assert len(done.stderr) < 1000  # it was 900,196 bytes
    assert len(done.stdout) < 1000


@pytest.mark.parametrize("option", ["--chunk-size", "--zipcode-column"])
def test_a_huge_option_value_is_echoed_short(
    e2e_env: dict[str, str], tmp_path: Path, option: str
) -> None:
    """Click quotes a refused option value whole; the CLI cuts the line (Linux allows
    128 kB in one argument)."""
    source = tmp_path / "in.csv"
    source.write_text("zipcode\n1000\n")
    value = "9x" * 60_000
    done = run_console(
        tmp_path, e2e_env, "score", str(source), "-o", str(tmp_path / "o.csv"), option, value
    )
    assert done.returncode == 2
    assert done.stderr.count(b"\n") == 1
    assert len(done.stderr) < 2200
