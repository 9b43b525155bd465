"""A worker node's Prometheus series, under the prefork pool (prometheus-client multiprocess).

    ZIPSCORE_METRICS=true celery -A worker worker ...   # http://127.0.0.1:9540/metrics

Choice: multiprocess mode with one port per node, not a port per pool process. A prefork
node's tasks run in child processes that the node replaces at will (a task that kills its
process, `worker_max_memory_per_child`), so a port per child would come and go with them and
Prometheus could not find it; their counters would also restart from zero with each new
child. In multiprocess mode every process writes its values to a memory-mapped file in the
node's own directory (`ZIPSCORE_METRICS_DIR/<node name>`, emptied when the node starts), and
the node's main process sums them for each scrape, counters of replaced children included.

Celery-level series follow celery-exporter's names and labels (`name`, `hostname`,
`queue_name`, `exception`): `celery_task_started_total`, `celery_task_succeeded_total`,
`celery_task_failed_total`, `celery_task_retried_total`, `celery_task_runtime` (histogram,
seconds) and `celery_worker_up`. zipscore's own: `zipscore_batch_rows_scored_total{outcome}`,
`zipscore_db_pool_connections{state}` (in use, idle: summed over the live processes) and
`zipscore_db_pool_requests_total`.

Off (the default, ZIPSCORE_METRICS=false) nothing is recorded, no file written, no port open.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery.signals import (
    celeryd_init,
    task_failure,
    task_postrun,
    task_prerun,
    task_retry,
    task_success,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

from worker.contract.settings import Settings, get_settings

logger = logging.getLogger(__name__)
MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# Lookups take milliseconds, chunks seconds: buckets from 1 ms to 2 minutes.
RUNTIME_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
)
TASK_LABELS = ("name", "hostname", "queue_name")


@dataclass(eq=False)  # hashed by identity (a cache key)
class _Series:
    started: Any
    succeeded: Any
    failed: Any
    retried: Any
    runtime: Any
    worker_up: Any
    rows_scored: Any
    pool_connections: Any
    pool_requests: Any
    hostname: str
    directory: Path
    clocks: dict[str, float] = field(default_factory=dict)


@dataclass
class _Node:
    """This process's series (None while off) and, in a node's main process, its listener."""

    series: _Series | None = None
    server: Any = None


_node = _Node()


def node_directory(settings: Settings, node: str) -> Path:
    """This node's own directory of value files (a node name made safe for a path)."""
    return settings.metrics_dir.resolve() / re.sub(r"[^A-Za-z0-9_.@-]", "_", node)


def start(node: str, settings: Settings | None = None) -> bool:
    """Turn recording on in this (the node's main) process, before the pool forks; False
    when ZIPSCORE_METRICS is off."""
    settings = settings or get_settings()
    if not settings.metrics:
        return False
    directory = node_directory(settings, node)
    shutil.rmtree(directory, ignore_errors=True)  # a previous run's values are not ours
    directory.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_VARIABLE] = str(directory)
    from prometheus_client import Counter, Gauge, Histogram, values

    # Chosen here, not at import: prometheus-client picks its value class when it is first
    # imported, which may be before this setting was read.
    values.ValueClass = values.MultiProcessValue()
    _node.series = _Series(
        started=Counter("celery_task_started", "Tasks started", TASK_LABELS, registry=None),
        succeeded=Counter("celery_task_succeeded", "Tasks succeeded", TASK_LABELS, registry=None),
        failed=Counter(
            "celery_task_failed", "Tasks failed", (*TASK_LABELS, "exception"), registry=None
        ),
        retried=Counter("celery_task_retried", "Tasks retried", TASK_LABELS, registry=None),
        runtime=Histogram(
            "celery_task_runtime",
            "Seconds a task ran",
            TASK_LABELS,
            buckets=RUNTIME_BUCKETS,
            registry=None,
        ),
        worker_up=Gauge(
            "celery_worker_up",
            "1 while the node runs",
            ["hostname"],
            registry=None,
            multiprocess_mode="max",
        ),
        rows_scored=Counter(
            "zipscore_batch_rows_scored",
            "Batch rows scored by workers",
            ["outcome"],
            registry=None,
        ),
        pool_connections=Gauge(
            "zipscore_db_pool_connections",
            "Postgres pool connections of the node's processes, by state",
            ["state"],
            registry=None,
            multiprocess_mode="livesum",
        ),
        pool_requests=Counter(
            "zipscore_db_pool_requests",
            "Connections taken from the Postgres pools",
            registry=None,
        ),
        hostname=node,
        directory=directory,
    )
    _node.series.worker_up.labels(node).set(1)
    return True


def enabled() -> bool:
    return _node.series is not None


def serve(settings: Settings | None = None) -> None:
    """Serve the node's sum of every process's values on ZIPSCORE_METRICS_PORT."""
    if _node.series is None or _node.server is not None:
        return
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    from worker.telemetry.listener import serve as listen

    settings = settings or get_settings()
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(_node.series.directory))
    _node.server = listen(
        registry, settings.metrics_host, settings.metrics_port, settings.scrape_keys
    )
    logger.info("metrics on http://%s:%d/metrics", settings.metrics_host, settings.metrics_port)


def stop() -> None:
    if _node.server is not None:
        _node.server.shutdown()
        _node.server.server_close()
        _node.server = None


@functools.cache
def _task_series(series: _Series, name: str, queue: str) -> tuple[Any, Any, Any]:
    """A task's started, succeeded and runtime series (found once per process)."""
    labels = (name, series.hostname, queue)
    return (
        series.started.labels(*labels),
        series.succeeded.labels(*labels),
        series.runtime.labels(*labels),
    )


def _of(task: Any) -> tuple[Any, Any, Any]:
    assert _node.series is not None
    name, _, queue = _labels(task)
    return _task_series(_node.series, name, queue)


def _labels(task: Any) -> tuple[str, str, str]:
    request = getattr(task, "request", None)
    delivery = getattr(request, "delivery_info", None) or {}
    queue = str(delivery.get("routing_key") or "-")
    return str(getattr(task, "name", "-")), _node.series.hostname if _node.series else "-", queue


@celeryd_init.connect
def _on_node_start(sender: str | None = None, **_: Any) -> None:
    start(str(sender or "worker"))


@worker_ready.connect
def _on_ready(**_: Any) -> None:
    serve()


@worker_shutdown.connect
def _on_shutdown(**_: Any) -> None:
    stop()


@task_prerun.connect
def _on_prerun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if _node.series is not None and task_id is not None:
        _node.series.clocks[task_id] = time.perf_counter()
        _of(task)[0].inc()


@task_postrun.connect
def _on_postrun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if _node.series is not None and task_id is not None:
        began = _node.series.clocks.pop(task_id, None)
        if began is not None:
            _of(task)[2].observe(time.perf_counter() - began)


@task_success.connect
def _on_success(sender: Any = None, result: Any = None, **_: Any) -> None:
    if _node.series is None:
        return
    _of(sender)[1].inc()
    if getattr(sender, "name", "") == "batch.score_chunk" and isinstance(result, dict):
        for outcome in ("ok", "unknown", "invalid"):
            count = result.get(outcome)
            if isinstance(count, int) and count > 0:
                _node.series.rows_scored.labels(outcome).inc(count)


@task_failure.connect
def _on_failure(sender: Any = None, exception: BaseException | None = None, **_: Any) -> None:
    if _node.series is not None:
        _node.series.failed.labels(*_labels(sender), type(exception).__name__).inc()


@task_retry.connect
def _on_retry(sender: Any = None, **_: Any) -> None:
    if _node.series is not None:
        _node.series.retried.labels(*_labels(sender)).inc()


@worker_process_shutdown.connect
def _on_process_exit(**_: Any) -> None:
    if _node.series is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid(), str(_node.series.directory))


def pool_checked_out(in_use: int, idle: int) -> None:
    """A connection left a process's pool: the pool's counts after it."""
    if _node.series is not None:
        _node.series.pool_requests.inc()
        pool_counts(in_use, idle)


def pool_counts(in_use: int, idle: int) -> None:
    if _node.series is not None:
        _node.series.pool_connections.labels("in_use").set(in_use)
        _node.series.pool_connections.labels("idle").set(idle)
