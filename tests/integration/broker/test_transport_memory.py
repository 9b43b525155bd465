"""zipscore's broker channel on a Redis at `maxmemory` (noeviction): no message in no key.

kombu's own channel, with Redis full: an ack raised OutOfMemoryError (its MULTI is refused
whole), a message taken by BRPOP or RPOP whose recording was refused was in neither the
queue nor the unacknowledged set, and a requeue raised. Each test runs its own
redis-server (ops/drills/servers.py); see worker/broker/memory.py.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kombu import Connection

from ops.drills.servers import RedisServer
from worker.broker import transport as broker_transport

MAXMEMORY = 20 * 1024 * 1024
PREFIX = "oom-test"


@pytest.fixture
def server(tmp_path: Path, services: None) -> Iterator[RedisServer]:
    redis_server = RedisServer(
        tmp_path / "redis", options=("--maxmemory", str(MAXMEMORY), "--maxmemory-policy",
                                     "noeviction"))  # fmt: skip
    redis_server.start()
    try:
        yield redis_server
    finally:
        redis_server.close()


@pytest.fixture
def connection(server: RedisServer) -> Iterator[Connection]:
    with Connection(
        server.url,
        transport=broker_transport.Transport,
        transport_options={"global_keyprefix": f"{PREFIX}:"},
    ) as conn:
        yield conn


def fill(server: RedisServer) -> None:
    """Take Redis past its maxmemory with one key, "filler"."""
    client = server.client()
    used = int(client.info("memory")["used_memory"])
    client.setrange("filler", MAXMEMORY - used + 1024 * 1024, b"x")


def free_later(server: RedisServer, seconds: float) -> threading.Thread:
    def free() -> None:
        time.sleep(seconds)
        server.client().delete("filler")

    thread = threading.Thread(target=free)
    thread.start()
    return thread


def unacked(server: RedisServer) -> list[str]:
    entries = server.client().hvals(f"{PREFIX}:unacked")
    return [json.loads(entry)[0]["body"] for entry in entries]


def queued(server: RedisServer) -> int:
    return int(server.client().llen(f"{PREFIX}:lookups"))


def test_an_ack_is_accepted_at_maxmemory(server: RedisServer, connection: Connection) -> None:
    queue = connection.SimpleQueue("lookups")
    queue.put({"n": 1}, serializer="json")  # JSON: the message check refuses other bodies
    message = queue.get_nowait()
    assert len(unacked(server)) == 1
    fill(server)
    message.ack()  # raised OutOfMemoryError: kombu's MULTI of ZREM and HDEL was refused
    assert unacked(server) == []


def test_a_message_taken_at_maxmemory_waits_to_be_recorded(
    server: RedisServer, connection: Connection
) -> None:
    queue = connection.SimpleQueue("lookups")
    queue.put({"n": 1}, serializer="json")  # JSON: the message check refuses other bodies
    fill(server)
    freeing = free_later(server, 1.0)
    started = time.monotonic()
    message = queue.get_nowait()  # RPOP, then the refused ZADD and HSET, retried
    waited = time.monotonic() - started
    freeing.join()
    assert waited >= 0.9
    assert len(unacked(server)) == 1
    message.ack()
    assert unacked(server) == []


def test_no_message_is_taken_while_redis_refuses_writes(
    server: RedisServer, connection: Connection
) -> None:
    queue = connection.SimpleQueue("lookups")
    queue.put({"n": 1}, serializer="json")  # JSON: the message check refuses other bodies
    fill(server)
    with pytest.raises(queue.Empty):
        queue.get(timeout=1.5)  # BRPOP would take it, and its recording be refused
    assert queued(server) == 1
    server.client().delete("filler")
    message = queue.get(timeout=5)
    assert message.payload == {"n": 1}
    assert len(unacked(server)) == 1


def test_a_requeue_at_maxmemory_leaves_the_message_unacknowledged(
    server: RedisServer, connection: Connection
) -> None:
    queue = connection.SimpleQueue("lookups")
    queue.put({"n": 1}, serializer="json")  # JSON: the message check refuses other bodies
    message = queue.get_nowait()
    fill(server)
    message.requeue()  # the RPUSH is refused: it stays for the periodic restore
    assert len(unacked(server)) == 1
    assert queued(server) == 0


def test_a_redis_that_refuses_the_probe_for_another_reason_still_serves(
    server: RedisServer,
) -> None:
    """Regression: a broker user allowed to pop but not to SET (an ACL) made the probe raise
    out of the worker's event loop; only a refusal for lack of memory holds messages back."""
    server.client().execute_command(
        "ACL", "SETUSER", "popper", "on", ">popper-pw", "~*", "&*", "+@all", "-set"
    )
    url = server.url.replace("redis://", "redis://popper:popper-pw@", 1)
    with Connection(
        url,
        transport=broker_transport.Transport,
        transport_options={"global_keyprefix": f"{PREFIX}:"},
    ) as conn:
        queue = conn.SimpleQueue("lookups")
        queue.put({"n": 1}, serializer="json")
        message = queue.get(timeout=5)
        assert message.payload == {"n": 1}
