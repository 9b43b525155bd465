"""The monitoring deliverables, checked with Prometheus's own promtool: the configuration,
the alert rules and their unit tests, the dashboard's every expression, and compose's
Prometheus and Grafana services."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.monitoring import MONITORING, dashboard_expressions, series_names
from tests.support.paths import ROOT

# Series no exporter of zipscore serves: Prometheus's own, and redis_exporter's.
FOREIGN = {"up", "redis_memory_used_bytes", "redis_memory_max_bytes"}


def promtool(*args: str, cwd: Path = MONITORING) -> subprocess.CompletedProcess[str]:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("ZIPSCORE_REQUIRE_SERVICES") == "1":
            pytest.fail("promtool is required in CI (make prometheus installs it)")
        pytest.skip("promtool is not installed: `make prometheus` installs Debian's package")
    return subprocess.run(
        [found, *args], capture_output=True, text=True, cwd=cwd, timeout=60, check=False
    )


def exported_series() -> set[str]:
    """Every series name zipscore's exporters serve: the producer's, the deployment's, and
    a worker node's (its series built for real in a child process, metrics on)."""
    script = (
        "import sys, tempfile, pathlib\n"
        "from worker.contract.settings import Settings\n"
        "from worker.telemetry import metrics\n"
        "s = Settings(_env_file=None, metrics=True, metrics_dir=pathlib.Path(tempfile.mkdtemp()))\n"
        "metrics.start('probe@test', s)\n"
        "series = metrics._node.series\n"
        "names = [getattr(v, '_name') for v in vars(series).values() if hasattr(v, '_name')]\n"
        "print(' '.join(names))\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    from producer import metrics as producer_metrics

    producer = {
        value._name
        for value in vars(producer_metrics).values()
        if hasattr(value, "_name") and hasattr(value, "collect")
    }
    deployment = {
        "celery_queue_length", "zipscore_risk_table_version", "zipscore_index_age_seconds",
        "zipscore_redis_up",
    }  # fmt: skip
    names = set(child.stdout.split()) | producer | deployment
    counters = {f"{name}_total" for name in names}
    histograms = {f"{name}_{part}" for name in names for part in ("bucket", "count", "sum")}
    return names | counters | histograms


def test_the_prometheus_configuration_is_valid(tmp_path: Path) -> None:
    """As compose mounts it, with the secret file where the container has it."""
    key = tmp_path / "metrics_key"
    key.write_text("k3y-0123456789abcdef-scrape\n")
    config = (
        (MONITORING / "prometheus.yml").read_text().replace("/run/secrets/metrics_key", str(key))
    )
    (tmp_path / "prometheus.yml").write_text(config)
    shutil.copy(MONITORING / "alerts.yml", tmp_path / "alerts.yml")
    checked = promtool("check", "config", str(tmp_path / "prometheus.yml"), cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


def test_the_alert_rules_are_valid_and_cover_the_five_risks() -> None:
    checked = promtool("check", "rules", "alerts.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"][0]["rules"]
    names = {rule["alert"] for rule in rules}
    assert {
        "ZipscoreWorkerDown", "ZipscoreQueueBackingUp", "ZipscoreIndexStale",
        "ZipscoreLookupErrors", "ZipscoreRedisMemoryHigh",
    } <= names  # fmt: skip


def test_the_alert_rules_pass_their_unit_tests() -> None:
    tested = promtool("test", "rules", "alerts.test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    tests = yaml.safe_load((MONITORING / "alerts.test.yml").read_text())["tests"]
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"][0]["rules"]
    firing = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if case.get("exp_alerts")
    }
    assert firing == {rule["alert"] for rule in rules}  # every alert seen firing once


def test_alerts_and_dashboard_read_only_series_that_are_exported(tmp_path: Path) -> None:
    exported = exported_series() | FOREIGN
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"][0]["rules"]
    for expression in [rule["expr"] for rule in rules] + dashboard_expressions():
        unknown = series_names(expression) - exported
        assert not unknown, f"{expression} reads {unknown}"


def test_every_dashboard_expression_is_valid_promql(tmp_path: Path) -> None:
    """Each panel's expression, as a recording rule, passes promtool's check."""
    expressions = dashboard_expressions()
    assert len(expressions) >= 12
    group = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"zipscore:panel_{number}", "expr": expression}
                    for number, expression in enumerate(expressions)
                ],
            }
        ]
    }
    rules = tmp_path / "dashboard.rules.yml"
    rules.write_text(yaml.safe_dump(group))
    checked = promtool("check", "rules", str(rules), cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_compose_runs_prometheus_and_grafana_with_the_dashboard(
    tmp_path: Path,
) -> None:
    services: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    prometheus, grafana = services["prometheus"], services["grafana"]
    for service in (prometheus, grafana):
        for volume in service["volumes"]:
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
        assert all(port.startswith("127.0.0.1:") for port in service["ports"])
    assert "--web.config.file=/run/secrets/prometheus_web" in prometheus["command"]
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD__FILE"].startswith("/run/secrets/")
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for name in ("gateway", "worker", "worker-batch"):
        assert jobs[name]["authorization"]["credentials_file"] == "/run/secrets/metrics_key"
        assert "metrics_key" in services[name]["secrets"]
        env = services[name]["environment"]
        assert env["ZIPSCORE_METRICS"] == "true"
        assert env["ZIPSCORE_METRICS_KEYS_FILE"] == "/run/secrets/metrics_key"
    for name in ("worker", "worker-batch"):
        assert services[name]["environment"]["ZIPSCORE_METRICS_DIR"].startswith("/tmp/")
        assert jobs[name]["dns_sd_configs"][0]["names"] == [name]
