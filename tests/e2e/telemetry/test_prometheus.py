"""A real Prometheus scrapes a running gateway and real prefork workers; PromQL through its
HTTP API answers the counts this test caused, for every series zipscore exports."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
import redis
import yaml

from ops import celery_worker
from ops.bench.environment import zipscore_exe
from ops.drills.servers import free_port
from ops.http_server import serving
from tests.support.browser import headless_chromium
from tests.support.environment import TEST_PREFIX
from tests.support.monitoring import dashboard_expressions, series_names
from tests.support.paths import ROOT, SCREENSHOTS
from tests.support.prometheus import Prometheus, prometheus_binary, prometheus_server
from worker.contract.index_cache import IndexCache
from worker.lookups import zipcodes

PREFIX = f"{TEST_PREFIX}-prom"
ALERTS = ROOT / "ops" / "monitoring" / "alerts.yml"
# Counters that exist once a task has failed or retried (none does here), and Redis memory
# (redis_exporter's, not run here).
NOT_CAUSED = {
    "celery_task_failed_total", "celery_task_retried_total", "redis_memory_used_bytes",
    "redis_memory_max_bytes",
}  # fmt: skip
BATCH_ROWS = 2_000


@dataclass
class Stack:
    prom: Prometheus
    gateway: str
    env: dict[str, str]
    tmp: Path
    batch_worker: subprocess.Popen[bytes]


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


@pytest.fixture(scope="module")
def stack(database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Gateway, a `lookups,index` worker (two pool processes) and Prometheus scraping them;
    and a `batch` worker (one pool process) in a session of its own, to be paused."""
    prometheus_binary()
    tmp = tmp_path_factory.mktemp("prom")
    worker_port, batch_port, gateway_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "ZIPSCORE_REDIS_PREFIX": PREFIX,
        "ZIPSCORE_METRICS": "true",
        "ZIPSCORE_METRICS_DIR": str(tmp / "metrics"),
        "ZIPSCORE_METRICS_PORT": str(worker_port),
        "ZIPSCORE_GATEWAY_UPLOAD_DIR": str(tmp / "uploads"),
        "ZIPSCORE_BATCH_CHUNK_SIZE": "10",
        "ZIPSCORE_BATCH_CHUNK_DEADLINE_SECONDS": "1",
        "ZIPSCORE_BATCH_MAX_ATTEMPTS": "60",
        "PYTHONUNBUFFERED": "1",
    }
    argv = celery_worker.command("lookups,index", f"prom-{os.getpid()}")
    batch_argv = celery_worker.command("batch", f"prom-batch-{os.getpid()}", concurrency=1)
    batch_env = {**env, "ZIPSCORE_METRICS_PORT": str(batch_port)}
    try:
        worker = celery_worker.start(env, tmp / "worker.log", argv)
        batch_worker = celery_worker.start(
            batch_env, tmp / "worker-batch.log", batch_argv, new_session=True
        )
    except celery_worker.WorkerDidNotStart as exc:
        pytest.fail(str(exc))
    gateway = f"http://127.0.0.1:{gateway_port}"
    serve = [zipscore_exe(), "serve", "--host", "127.0.0.1", "--port", str(gateway_port)]
    jobs = {
        "gateway": [f"127.0.0.1:{gateway_port}"],
        "worker": [f"127.0.0.1:{worker_port}"],
        "worker-batch": [f"127.0.0.1:{batch_port}"],
    }
    try:
        with (
            serving(serve, gateway, env, tmp / "gateway.log", cwd=ROOT),
            prometheus_server(tmp / "prometheus", jobs, [ALERTS]) as prom,
        ):
            yield Stack(prom, gateway, env, tmp, batch_worker)
    finally:
        _stop(worker)
        _stop(batch_worker)
        client = redis.Redis.from_url(env.get("ZIPSCORE_REDIS_URL", "redis://127.0.0.1:6379/0"))
        for key in client.scan_iter(match=f"{PREFIX}*", count=1000):
            client.delete(key)


def by_labels(prom: Prometheus, promql: str, *labels: str) -> dict[tuple[str, ...], float]:
    return {
        tuple(item["metric"].get(label, "") for label in labels): item["value"]
        for item in prom.query(promql)
    }


def test_lookups_through_the_gateway_show_in_prometheus(
    stack: Stack, conn: psycopg.Connection
) -> None:
    prom = stack.prom
    prom.wait_for("count(up == 1)", lambda v: v == 3)  # every target scraped
    prom.wait_for("zipscore_redis_up", lambda v: v == 1)
    assert prom.scalar("zipscore_risk_table_version") is None  # no worker has answered yet
    assert prom.scalar('celery_worker_up{job="worker"}') == 1
    requests_before = prom.scalar("sum(zipscore_db_pool_requests_total)") or 0
    fetched = datetime.now(UTC) - timedelta(hours=1)
    index = IndexCache(
        redis.Redis.from_url(stack.env.get("ZIPSCORE_REDIS_URL", "redis://127.0.0.1:6379/0")),
        PREFIX,
        600,
    )
    index.put(
        {"base_year": 2004, "index": 130.0, "period": "2026-10", "fetched_at": fetched.isoformat()}
    )

    with httpx.Client(base_url=stack.gateway, timeout=15) as http:
        statuses = [http.get(f"/zipcodes/{z}").status_code for z in (1000, 1001, 1002, 1003, 1004)]
        statuses += [
            http.get(f"/zipcodes/{z}").status_code for z in (1312, 1313)
        ]  # not in the table
        statuses += [http.get(f"/zipcodes/{z}").status_code for z in ("99", "abcd")]  # refused
        statuses += [http.get(f"/zipcodes/{z}").status_code for z in (1000, 1001, 1002, 1312)]
    assert statuses == [200] * 7 + [400] * 2 + [200] * 4

    expected = {
        ("answered", "worker"): 5,
        ("unknown", "worker"): 2,
        ("refused", "none"): 2,
        ("answered", "cache"): 3,
        ("unknown", "cache"): 1,
    }
    lookups = 'sum by (outcome, source) (zipscore_lookups_total{question="lookup"})'
    deadline = time.monotonic() + 30
    while by_labels(prom, lookups, "outcome", "source") != expected:
        assert time.monotonic() < deadline, by_labels(prom, lookups, "outcome", "source")
        time.sleep(0.25)
    prom.wait_for(
        'sum(zipscore_lookup_duration_seconds_count{question="lookup"})', lambda v: v == 13
    )
    cached = (
        'sum(zipscore_lookup_duration_seconds_bucket{question="lookup",source="cache",le="+Inf"})'
    )
    assert prom.scalar(cached) == 4
    # The worker's side: seven tasks, each started, succeeded and timed, on the lookups queue.
    for series in (
        "celery_task_started_total",
        "celery_task_succeeded_total",
        "celery_task_runtime_count",
    ):
        prom.wait_for(
            f'sum({series}{{name="zipcodes.lookup",queue_name="lookups"}})', lambda v: v == 7
        )
    assert prom.scalar('sum(celery_task_failed_total{name="zipcodes.lookup"})') is None
    version = zipcodes.table_version(conn)
    prom.wait_for("zipscore_risk_table_version", lambda v: v == version)
    prom.wait_for(
        "sum(zipscore_db_pool_requests_total)", lambda v: v is not None and v > requests_before
    )
    assert (prom.scalar('sum(zipscore_db_pool_connections{state="idle"})') or 0) >= 1
    assert prom.scalar('sum(zipscore_db_pool_connections{state="in_use"})') == 0
    age = prom.wait_for('zipscore_index_age_seconds{base_year="2004"}', lambda v: v is not None)
    assert age is not None
    assert 3_600 <= age < 3_700


def test_a_batch_shows_queue_depth_resent_chunks_and_throughput(stack: Stack) -> None:
    """The batch worker is stopped (SIGSTOP) once the job has started: its chunks wait on the
    queue, the producer resends those past their deadline, and all is scored once it goes on."""
    prom = stack.prom
    body = "id,zipcode\n" + "".join(f"{n},{1000 + n % 9000}\n" for n in range(BATCH_ROWS))
    group = os.getpgid(stack.batch_worker.pid)
    with httpx.Client(base_url=stack.gateway, timeout=15) as http:
        accepted = http.post(
            "/batches", content=body.encode(), headers={"Content-Type": "text/csv"}
        )
        assert accepted.status_code == 202, accepted.text
        os.killpg(group, signal.SIGSTOP)
        try:
            job = accepted.json()["job_id"]
            prom.wait_for(
                'celery_queue_length{queue_name="batch"}', lambda v: v is not None and v > 0
            )
            prom.wait_for("zipscore_batch_chunks_resent_total", lambda v: v is not None and v >= 1)
        finally:
            os.killpg(group, signal.SIGCONT)
        deadline = time.monotonic() + 60
        while (state := http.get(f"/batches/{job}").json())["state"] != "done":
            assert state["state"] == "running", state
            assert time.monotonic() < deadline, state
            time.sleep(0.2)
    prom.wait_for('celery_queue_length{queue_name="batch"}', lambda v: v == 0)
    prom.wait_for(
        "sum(zipscore_batch_rows_scored_total)", lambda v: v is not None and v >= BATCH_ROWS
    )
    chunks = 'sum(celery_task_succeeded_total{name="batch.score_chunk",queue_name="batch"})'
    prom.wait_for(chunks, lambda v: v is not None and v >= BATCH_ROWS / 10)
    prom.wait_for("sum(zipscore_batch_rows_total)", lambda v: v == BATCH_ROWS)
    prom.wait_for("zipscore_batch_jobs_total", lambda v: v == 1)
    rate = prom.wait_for("zipscore_batch_rows_per_second", lambda v: v is not None and v > 0)
    assert rate is not None


def test_the_dashboard_and_the_alerts_read_series_of_the_real_scrape(stack: Stack) -> None:
    """After the tests above: every series a panel or an alert reads is in Prometheus (but
    those no test caused), every panel's expression evaluates, every rule loaded healthy."""
    prom = stack.prom
    rules = yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]
    expressions = dashboard_expressions() + [rule["expr"] for rule in rules]
    read = set().union(*(series_names(expression) for expression in expressions)) - NOT_CAUSED
    for name in sorted(read):
        assert prom.query(f'count({{__name__="{name}"}})'), f"{name} is not in the scrape"
    for expression in dashboard_expressions():
        prom.query(expression)  # evaluates (an error fails the query)
    groups = httpx.get(f"{prom.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
    loaded = {rule["name"]: rule["health"] for group in groups for rule in group["rules"]}
    assert set(loaded) == {rule["alert"] for rule in rules}
    assert set(loaded.values()) == {"ok"}


def test_the_prometheus_graph_of_the_lookups_renders_in_headless_chromium(stack: Stack) -> None:
    """The picture of the README's Monitoring section (reports/screenshots/)."""
    from urllib.parse import urlencode

    query = urlencode(
        {
            "g0.expr": "sum by (outcome, source) (zipscore_lookups_total)",
            "g0.tab": "0",
            "g0.range_input": "1m",
        }
    )
    with headless_chromium() as browser:
        view = browser.new_page(viewport={"width": 1400, "height": 900})
        view.goto(f"{stack.prom.url}/graph?{query}", wait_until="networkidle")
        view.locator("canvas, .graph-legend, svg").first.wait_for(timeout=30_000)
        text = view.inner_text("body")
        view.screenshot(path=str(SCREENSHOTS / "prometheus-lookups.png"), full_page=False)
    assert 'outcome="answered"' in text or "answered" in text
