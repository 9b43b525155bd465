"""A worker node's series, recorded by its Celery signal handlers into multiprocess files
and served summed on its port; in a child process, as metrics on change how
prometheus-client stores values for the whole process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ops.drills.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import json, sys, urllib.request
from pathlib import Path
from types import SimpleNamespace
from worker.contract.settings import Settings
from worker.telemetry import metrics

directory, port, key = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
off = Settings(_env_file=None, metrics_dir=directory)
assert not metrics.start("off@test", off) and not metrics.enabled()
metrics._on_failure(sender=None, exception=ValueError("nothing recorded while off"))
on = Settings(
    _env_file=None, metrics=True, metrics_dir=directory, metrics_port=port, metrics_keys=(key,)
)
assert metrics.start("unit@test", on)
task = SimpleNamespace(
    name="batch.score_chunk", request=SimpleNamespace(delivery_info={"routing_key": "batch"})
)
for _ in range(2):
    metrics._on_prerun(task_id="t1", task=task)
    metrics._on_success(sender=task, result={"ok": 3, "unknown": 1, "invalid": 0})
    metrics._on_postrun(task_id="t1", task=task)
metrics._on_failure(sender=task, exception=ValueError("x"))
metrics._on_retry(sender=task)
metrics.pool_checked_out(1, 2)
metrics.serve(on)
request = urllib.request.Request(
    f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {key}"}
)
with urllib.request.urlopen(request, timeout=5) as answer:
    text = answer.read().decode()
metrics.stop()
values = {}
for line in text.splitlines():
    if line and not line.startswith("#"):
        name, _, value = line.rpartition(" ")
        values[name] = float(value)
print(json.dumps({"values": values, "nodes": sorted(p.name for p in directory.iterdir())}))
"""


def test_the_signal_handlers_record_and_the_node_serves_the_sum(tmp_path: Path) -> None:
    key = "k3y-0123456789abcdef-scrape"
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), str(free_port()), key],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout.strip().splitlines()[-1])
    values: dict[str, float] = found["values"]
    task = 'hostname="unit@test",name="batch.score_chunk",queue_name="batch"'
    assert values[f"celery_task_started_total{{{task}}}"] == 2
    assert values[f"celery_task_succeeded_total{{{task}}}"] == 2
    assert values[f"celery_task_runtime_count{{{task}}}"] == 2
    failed = (
        'exception="ValueError",hostname="unit@test",name="batch.score_chunk",queue_name="batch"'
    )
    assert values[f"celery_task_failed_total{{{failed}}}"] == 1
    assert values[f"celery_task_retried_total{{{task}}}"] == 1
    assert values['zipscore_batch_rows_scored_total{outcome="ok"}'] == 6
    assert values['zipscore_batch_rows_scored_total{outcome="unknown"}'] == 2
    assert 'zipscore_batch_rows_scored_total{outcome="invalid"}' not in values
    assert values['celery_worker_up{hostname="unit@test"}'] == 1
    assert values['zipscore_db_pool_connections{state="in_use"}'] == 1
    assert values['zipscore_db_pool_connections{state="idle"}'] == 2
    assert values["zipscore_db_pool_requests_total"] == 1
    assert found["nodes"] == ["unit@test"]  # nothing at all written while off
