"""A real Prometheus (Debian's package, `make prometheus`) for the tests: started on a free
port with a generated configuration, queried through its HTTP API, stopped at the end.

    with prometheus_server(tmp_path, {"gateway": ["127.0.0.1:5000"]}) as prom:
        prom.wait_for("sum(zipscore_lookups_total)", lambda v: v == 3)

Skipped where the binary is missing, failed instead in CI (ZIPSCORE_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from ops.drills.servers import free_port
from ops.http_server import serving

SCRAPE_SECONDS = 1


def prometheus_binary() -> str:
    """The `prometheus` executable, or skip (fail in CI) when it is not installed."""
    found = shutil.which("prometheus")
    if found is None:
        if os.environ.get("ZIPSCORE_REQUIRE_SERVICES") == "1":
            pytest.fail("prometheus is required in CI (make prometheus installs it)")
        pytest.skip("prometheus is not installed: `make prometheus` installs Debian's package")
    return found


@dataclass
class Prometheus:
    url: str
    log: Path

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector `promql` evaluates to now: `[{"metric": {...}, "value": f}]`."""
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10)
        answer.raise_for_status()
        body = answer.json()
        assert body["status"] == "success", body
        return [
            {"metric": item["metric"], "value": float(item["value"][1])}
            for item in body["data"]["result"]
        ]

    def scalar(self, promql: str) -> float | None:
        """The single value of `promql`, or None when it has no series."""
        found = self.query(promql)
        assert len(found) <= 1, found
        return found[0]["value"] if found else None

    def wait_for(
        self, promql: str, expected: Callable[[float | None], bool], timeout: float = 30
    ) -> float | None:
        """Poll until `expected(scalar(promql))`; fail with the last value seen."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.scalar(promql)
            if expected(value):
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"{promql} is {value} after {timeout} s")
            time.sleep(0.25)

    def targets_up(self) -> dict[str, str]:
        answer = httpx.get(f"{self.url}/api/v1/targets", timeout=10).json()
        return {t["labels"]["job"]: t["health"] for t in answer["data"]["activeTargets"]}


def scrape_config(
    jobs: Mapping[str, Sequence[str]], rule_files: Sequence[Path] = ()
) -> dict[str, Any]:
    """A configuration scraping every job's targets each second."""
    return {
        "global": {
            "scrape_interval": f"{SCRAPE_SECONDS}s",
            "evaluation_interval": f"{SCRAPE_SECONDS}s",
        },
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": list(targets)}]}
            for job, targets in jobs.items()
        ],
    }


@contextlib.contextmanager
def prometheus_server(
    directory: Path, jobs: Mapping[str, Sequence[str]], rule_files: Sequence[Path] = ()
) -> Iterator[Prometheus]:
    """Run Prometheus scraping `jobs` until the block ends."""
    binary = prometheus_binary()
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "prometheus.yml"
    config.write_text(yaml.safe_dump(scrape_config(jobs, rule_files)))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = directory / "prometheus.log"
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    with serving(argv, url, os.environ, log, cwd=directory, ready_path="/-/ready"):
        yield Prometheus(url, log)
