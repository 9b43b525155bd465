"""Drill: a message whose JSON body is broken, pushed raw into a real worker's queue.

Celery refuses it before any task runs, but logged CRITICAL "Can't decode message body",
a traceback and a dump of the body (anything a client wrote, secrets included). The
worker's consumer now logs one line with the message's id, drops it, and goes on.
"""

from __future__ import annotations

from kombu import Connection

from ops.drills.servers import RedisServer
from tests.support.console import console
from tests.support.drills import StartWorker


def test_a_broken_json_body_is_one_line_and_the_worker_goes_on(
    drill_env: dict[str, str], redis_server: RedisServer, start_worker: StartWorker
) -> None:
    prefix = drill_env["ZIPSCORE_REDIS_PREFIX"]
    worker = start_worker(drill_env)
    with Connection(redis_server.url, transport_options={"global_keyprefix": f"{prefix}:"}) as conn:
        conn.Producer().publish(
            b'[[9000], {}, {"note": "s3cr3t-token"',  # cut short
            routing_key="lookups", exchange="", serializer=None,
            content_type="application/json", content_encoding="utf-8",
            headers={"task": "zipcodes.lookup", "id": "bad-json-1", "lang": "py"},
        )  # fmt: skip
    after = console("lookup", "9170", env=drill_env)
    assert (after.returncode, after.stdout) == (0, "A\n"), after.stderr
    log = worker.text()
    assert "CRITICAL" not in log
    assert "Traceback" not in log
    assert "s3cr3t" not in log
    refused = [line for line in log.splitlines() if "bad-json-1" in line]
    assert len(refused) == 1, log[-3000:]
    # Refused by the broker message check (worker/broker/envelope.py) before Celery decodes it
    assert "refused message on queue lookups id=bad-json-1 task=zipcodes.lookup" in refused[0]
    assert "the task body is not JSON" in refused[0]
    assert worker.process.poll() is None
