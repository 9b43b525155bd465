"""Drill: raw bytes pushed onto zipscore's queues, with the attacker's tool (LPUSH).

Given a real worker (`celery -A worker worker`, all three queues), when a malformed message
lands on a queue (the corpus in tests/support/messages.py: not JSON, a list, no id, a null delivery
tag, Celery's built-in tasks, a chain, an ETA in 2999, ...; then more from hypothesis),
then it is refused, logged once on one line (queue and reason, never the body), kept in the
capped dead-letter list, and the worker answers the next lookup, each time, within a
second. Before worker/broker/transport.py checked them, some of these stopped the worker
(Unrecoverable error), one looped forever, and far-future ETAs were held in memory: the
drill measures the worker's RSS after a flood of them (20,000 under `make drills`).
"""

from __future__ import annotations

import base64
import json
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psutil
import pytest
from hypothesis import HealthCheck, given, settings

from ops.drills.servers import ROOT, RedisServer, WorkerProcess, free_port, wait_until
from tests.support.drills import StartWorker, run_producer, scaled
from tests.support.messages import CORPUS, encode, mutated, task_message
from worker.broker.transport import DEADLETTER_KEY, DEADLETTER_MAX, DEADLETTER_TTL_SECONDS

# The brief's bar: the worker serves again within a second of a hostile message.
SERVES_AGAIN_WITHIN = 1.0
FAR_FUTURE = "2999-01-01T00:00:00+00:00"


@dataclass
class Queues:
    """The drill's queues as an attacker sees them: raw LPUSH, answers read from Redis."""

    server: RedisServer
    prefix: str
    worker: WorkerProcess
    waits: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.client = self.server.client()

    def push(self, queue: str, *items: bytes) -> None:
        self.client.lpush(f"{self.prefix}:{queue}", *items)

    def length(self, queue: str) -> int:
        return int(self.client.llen(f"{self.prefix}:{queue}"))

    def deadletters(self) -> int:
        return int(self.client.llen(f"{self.prefix}:{DEADLETTER_KEY}"))

    def held(self) -> int:
        """Messages delivered to the worker and not acknowledged (kombu's `unacked` hash)."""
        return int(self.client.hlen(f"{self.prefix}:unacked"))

    def none_held(self) -> None:
        """Wait for the acknowledgements: a task's answer is stored just before its ack."""
        wait_until(lambda: self.held() == 0, 5, "no message held unacknowledged")

    def answer(self, task_id: str, timeout: float) -> dict[str, object]:
        """The stored result of `task_id` once it is final (not STARTED)."""
        key = f"{self.prefix}:celery-task-meta-{task_id}"

        def meta() -> dict[str, object]:
            raw = self.client.get(key)
            stored: dict[str, object] = json.loads(raw) if isinstance(raw, bytes) else {}
            return stored or {"status": "PENDING"}

        wait_until(lambda: meta()["status"] in {"SUCCESS", "FAILURE"}, timeout, task_id, 0.005)
        return meta()

    def serves_after(self, queue: str, item: bytes, timeout: float = 10) -> float:
        """Push `item` then a lookup behind it: seconds until the lookup's answer."""
        task_id = f"after-{uuid.uuid4().hex[:12]}"
        started = time.monotonic()
        self.push(queue, item)
        self.push("lookups", encode(task_message(task_id=task_id)))
        meta = self.answer(task_id, timeout)
        waited = time.monotonic() - started
        assert meta["status"] == "SUCCESS", meta
        assert meta["result"] == {"zipcode": 9170, "risk_factor": "A", "exists": True}, meta
        wait_until(lambda: self.length(queue) == 0, timeout, f"the {queue} queue to be read")
        assert self.worker.process.poll() is None, self.worker.text()[-3000:]
        self.waits.append(waited)
        return waited

    def summary(self) -> str:
        return (f"{len(self.waits)} lookups after hostile messages: median "
                f"{statistics.median(self.waits) * 1000:.0f} ms, slowest "
                f"{max(self.waits) * 1000:.0f} ms")  # fmt: skip


@pytest.fixture
def queues(
    drill_env: dict[str, str], redis_server: RedisServer, start_worker: StartWorker
) -> Queues:
    worker = start_worker(drill_env)
    return Queues(redis_server, drill_env["ZIPSCORE_REDIS_PREFIX"], worker)


def refusals(worker: WorkerProcess) -> list[str]:
    return [line for line in worker.text().splitlines() if "refused message on queue" in line]


def assert_no_crash_in(log: str) -> None:
    for sign in ("Unrecoverable error", "Connection to broker lost", "Traceback"):
        assert sign not in log, log[-3000:]


def test_each_malformed_message_is_refused_once_and_the_worker_serves_within_a_second(
    queues: Queues,
) -> None:
    # The first lookup warms the worker's copy of the risk table: not a hostile message's cost.
    queues.serves_after("lookups", encode(task_message(task_id="warm-up")))
    queues.waits.clear()
    # Most on the lookups queue, whose next lookup then shows they were read; every
    # queue of the worker gets its share.
    for n, (name, item, _reason) in enumerate(CORPUS):
        queue = ("lookups", "lookups", "index", "batch")[n % 4]
        waited = queues.serves_after(queue, item)
        assert waited < SERVES_AGAIN_WITHIN, f"{name}: the next lookup took {waited:.2f} s"
    lines = refusals(queues.worker)
    assert len(lines) == len(CORPUS), "\n".join(lines)  # each refused, each logged once
    for line, (name, _item, reason) in zip(lines, CORPUS, strict=True):
        assert reason in line, (name, line)
        assert len(line) < 300, (name, line)  # the reason, never the body
    assert queues.deadletters() == len(CORPUS)
    oldest = queues.client.lindex(f"{queues.prefix}:{DEADLETTER_KEY}", -1)
    assert isinstance(oldest, bytes)
    kept = json.loads(oldest)
    assert (kept["queue"], kept["reason"]) == (
        "lookups",
        "the task id None is missing or not an id",
    )
    log = queues.worker.text()
    assert_no_crash_in(log)
    # Celery's built-in tasks, the chain and the callbacks ran nothing.
    assert "Task celery." not in log
    assert "Task index.refresh[" not in log
    queues.none_held()
    time.sleep(1)  # chord_unlock used to retry itself 75 times a second: nothing comes back
    assert len(refusals(queues.worker)) == len(CORPUS)
    print(queues.summary())


def test_generated_messages_never_stop_the_worker(queues: Queues) -> None:
    @settings(
        max_examples=scaled(40, 400),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(item=mutated(task_id="generated"))
    def one(item: bytes) -> None:
        queues.serves_after("lookups", item)

    one()
    log = queues.worker.text()
    assert_no_crash_in(log)
    queues.none_held()
    assert max(queues.waits) < SERVES_AGAIN_WITHIN * 3, queues.summary()
    print(queues.summary())


def broadcast(body: object) -> bytes:
    """A remote-control broadcast envelope around the JSON `body`."""
    message = task_message(queue="celery.pidbox")
    message["headers"] = {}
    message["body"] = base64.b64encode(json.dumps(body).encode()).decode()
    return encode(message)


def test_a_broadcast_that_is_not_a_message_is_refused_and_remote_control_still_answers(
    queues: Queues, drill_env: dict[str, str]
) -> None:
    # Remote control is a PUBLISH on this channel, which the worker subscribes to; a JSON
    # list there stopped the worker (TypeError in kombu) before the check.
    topic = f"{queues.prefix}:/0.celery.pidbox"
    hostile = [b"[1]", b'{"a": 1}', b'{"properties": {}, "body": "x"}', b"null"]
    # Envelopes as Celery's, bodies not: Celery answers them itself (an error line; the
    # second makes it resubscribe, so it goes last).
    odd = [broadcast({"method": "no_such_command"}), broadcast([1])]
    for item in [*hostile, *odd]:
        assert queues.client.publish(topic, item) == 1  # the worker is listening
        queues.serves_after("lookups", encode(task_message(task_id="warm-up")))
    assert len(refusals(queues.worker)) == len(hostile)
    # JSON nested past the recursion limit: kombu decodes it before any check, and its
    # RecursionError escaped the event loop.
    deep = b"[" * 100_000 + b"]" * 100_000
    assert queues.client.publish(topic, deep) == 1
    queues.serves_after("lookups", encode(task_message(task_id="after-deep")))
    assert "refused broadcast: its JSON is nested too deeply" in queues.worker.text()

    def pong() -> bool:
        ping = subprocess.run(
            [sys.executable, "-m", "celery", "-A", "worker", "inspect", "ping", "-t", "3"],
            cwd=ROOT, env=drill_env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        return ping.returncode == 0 and "pong" in ping.stdout

    wait_until(pong, 30, "a pong from the worker", 0.5)
    assert "Unrecoverable error" not in queues.worker.text()


def rss_mb(worker: WorkerProcess) -> float:
    """The RSS of the worker's main process, which consumes and holds ETA messages."""
    return float(psutil.Process(worker.pid).memory_info().rss) / 2**20


def test_a_flood_of_far_future_etas_is_refused_without_growing_the_worker(
    queues: Queues,
) -> None:
    queues.serves_after("lookups", encode(task_message(task_id="warm-up")))
    before = rss_mb(queues.worker)
    count = scaled(2_000, 20_000)
    started = time.monotonic()
    for first in range(0, count, 1_000):
        queues.push("lookups", *(
            encode(task_message(task_id=f"eta-{n}", eta=FAR_FUTURE))
            for n in range(first, min(count, first + 1_000))
        ))  # fmt: skip
    wait_until(lambda: queues.length("lookups") == 0, scaled(60, 300), "the flood to be read")
    read = time.monotonic() - started
    waited = queues.serves_after("lookups", encode(task_message(task_id="after-flood")))
    after = rss_mb(queues.worker)
    print(f"{count} far-future ETAs read in {read:.1f} s; worker RSS {before:.0f} -> "
          f"{after:.0f} MB; next lookup {waited * 1000:.0f} ms")  # fmt: skip
    assert after - before < 20, f"worker RSS {before:.0f} -> {after:.0f} MB"
    queues.none_held()  # none held for its ETA
    assert len(refusals(queues.worker)) == count
    # The dead-letter list keeps the newest refusals only, and expires.
    assert queues.deadletters() == min(count, DEADLETTER_MAX)
    ttl = queues.client.ttl(f"{queues.prefix}:{DEADLETTER_KEY}")
    assert 0 < ttl <= DEADLETTER_TTL_SECONDS
    assert_no_crash_in(queues.worker.text())


def test_messages_waiting_for_their_eta_are_capped(
    drill_env: dict[str, str], redis_server: RedisServer, start_worker: StartWorker
) -> None:
    # ETAs inside the bound are retries as far as the worker can tell: it holds them in
    # memory until they fall due, but no more of them than ZIPSCORE_MAX_ETA_MESSAGES.
    cap = scaled(200, 5_000)
    env = {**drill_env, "ZIPSCORE_MAX_ETA_MESSAGES": str(cap), "ZIPSCORE_MAX_ETA_SECONDS": "300"}
    queues = Queues(redis_server, env["ZIPSCORE_REDIS_PREFIX"], start_worker(env))
    queues.serves_after("lookups", encode(task_message(task_id="warm-up")))
    before = rss_mb(queues.worker)
    count = scaled(1_000, 20_000)
    soon = (datetime.now(UTC) + timedelta(seconds=280)).isoformat()
    for first in range(0, count, 1_000):
        queues.push("lookups", *(
            encode(task_message(task_id=f"soon-{n}", eta=soon))
            for n in range(first, min(count, first + 1_000))
        ))  # fmt: skip
    wait_until(lambda: queues.length("lookups") == 0, scaled(60, 240), "the flood to be read")
    waited = queues.serves_after("lookups", encode(task_message(task_id="after-soon")))
    after = rss_mb(queues.worker)
    print(f"{count} ETAs 280 s ahead, at most {cap} held: worker RSS {before:.0f} -> "
          f"{after:.0f} MB; next lookup {waited * 1000:.0f} ms")  # fmt: skip
    assert waited < SERVES_AGAIN_WITHIN
    wait_until(lambda: queues.held() == cap, 5, f"{cap} messages held for their ETA")
    lines = refusals(queues.worker)
    assert len(lines) == count - cap
    assert all("messages already wait for their ETA" in line for line in lines)
    assert after - before < 20 + cap * 0.01, f"worker RSS {before:.0f} -> {after:.0f} MB"
    assert_no_crash_in(queues.worker.text())


def test_celery_s_own_retries_pass_the_check(
    drill_env: dict[str, str], redis_server: RedisServer, start_worker: StartWorker
) -> None:
    # A refresh whose source refuses connections is retried by Celery (a new message with
    # an ETA, retries, parent and root ids): each retry must pass, up to the last.
    env = {**drill_env, "ZIPSCORE_STATBEL_URL": f"http://127.0.0.1:{free_port()}/"}
    worker = start_worker(env, queues="index")
    run_producer(env, "raw", "index.refresh", "refresh-retried", "[]")
    queues = Queues(redis_server, env["ZIPSCORE_REDIS_PREFIX"], worker)
    assert queues.answer("refresh-retried", 60)["status"] == "FAILURE"  # after its retries
    retries = int(env.get("ZIPSCORE_INDEX_RETRY_MAX_RETRIES", "2"))
    assert worker.text().count("Task index.refresh[refresh-retried] received") == retries + 1
    assert refusals(worker) == []


def test_a_retry_s_eta_within_the_bound_still_runs(queues: Queues) -> None:
    eta = time.time() + 2
    soon = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(eta))
    queues.push("lookups", encode(task_message(task_id="retry-soon", eta=soon, retries=1)))
    meta = queues.answer("retry-soon", 15)
    assert meta["status"] == "SUCCESS", meta
    assert time.time() >= eta - 1  # run at its ETA (second precision), not before
    assert refusals(queues.worker) == []
