"""Drill: the soak script (ops/drills/soak.py), scaled: 32 producers, zero errors, flat gauges.

`make drills` runs the script itself for 60 s and prints its table; here it runs a few
seconds and its JSON is checked: no errors in any phase, every phase moved work, and the
worker's RSS and open connections are flat from the first interval to the last.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.support.drills import scaled
from tests.support.environment import ADMIN_DATABASE_URL
from tests.support.paths import ROOT


def test_a_scaled_soak_has_no_errors_and_flat_gauges(services: None) -> None:
    seconds = scaled(4, 60)
    done = subprocess.run(
        [sys.executable, "-m", "ops.drills.soak", "--json", "--seconds", str(seconds),
         "--phase-seconds", str(scaled(1.5, 10)), "--intervals", "3",
         "--hits", str(scaled(300, 4500))],
        cwd=ROOT, env={**os.environ, "ZIPSCORE_TEST_ADMIN_DATABASE_URL": ADMIN_DATABASE_URL},
        capture_output=True, text=True, timeout=seconds + 240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    report = json.loads(done.stdout)
    print(json.dumps(report, indent=1))
    assert report["producers"] == 32
    assert all(phase["errors"] == 0 and phase["calls"] > 0 for phase in report["phases"])
    first, last = report["intervals"][0], report["intervals"][-1]
    assert last["worker_rss_mb"] <= first["worker_rss_mb"] * 1.15 + 5
    assert last["pg_connections"] <= first["pg_connections"]
    assert last["redis_clients"] <= first["redis_clients"] + 2
    assert last["p99_ms"] <= max(3 * first["p99_ms"], 50)
