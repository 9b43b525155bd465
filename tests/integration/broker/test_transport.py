"""The broker channel's refusals on the real Redis: dead-letter list, ETA cap, faults.

Given the channel zipscore installs for redis:// (worker/broker/transport.py) with this
run's key prefix, when it is handed a message it must refuse, then the message is kept in
`<prefix>:deadletter` (capped, expiring), and a fault of the check itself refuses the
message instead of stopping the worker. The drill tests/drills/broker/test_hostile_messages.py
does the same through a real worker; these are the parts a drill cannot reach.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

import worker.lookups.tasks  # noqa: F401  (registers zipcodes.lookup, which the check asks for)
from tests.support.environment import TEST_PREFIX
from tests.support.messages import encode, task_message
from worker.broker import transport as broker_transport
from worker.broker.transport import DEADLETTER_KEY, DEADLETTER_MAX, DEADLETTER_TTL_SECONDS
from worker.celery_app import app

DEADLETTER = f"{TEST_PREFIX}:{DEADLETTER_KEY}"


@pytest.fixture
def channel(redis_keys: redis.Redis) -> Iterator[Any]:
    redis_keys.delete(DEADLETTER)
    with app.connection_for_read() as conn:
        yield conn.default_channel
    redis_keys.delete(DEADLETTER)


def kept(client: redis.Redis) -> list[dict[str, Any]]:
    return [json.loads(entry) for entry in client.lrange(DEADLETTER, 0, -1)]


def test_the_installed_channel_is_zipscore_s(channel: Any) -> None:
    assert isinstance(channel, broker_transport.Channel)
    assert tuple(channel.task_queues) == ("lookups", "batch", "index")


def test_a_refused_message_is_kept_with_its_reason_in_a_capped_expiring_list(
    channel: Any, redis_keys: redis.Redis
) -> None:
    assert channel._admit(b"garbage", "lookups") is None
    (entry,) = kept(redis_keys)
    assert entry["queue"] == "lookups"
    assert entry["reason"] == "the message is not JSON"
    assert entry["message"] == "garbage"
    assert 0 < redis_keys.ttl(DEADLETTER) <= DEADLETTER_TTL_SECONDS
    for _ in range(DEADLETTER_MAX + 5):
        channel._admit(b"[]", "batch")
    assert redis_keys.llen(DEADLETTER) == DEADLETTER_MAX  # the newest kept
    assert kept(redis_keys)[0]["queue"] == "batch"


def test_a_fault_of_the_check_refuses_the_message(
    channel: Any, redis_keys: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(name: str) -> bool:
        raise RuntimeError("registry unavailable")

    monkeypatch.setattr(broker_transport, "is_zipscore_task", broken)
    assert channel._admit(encode(task_message()), "lookups") is None
    assert kept(redis_keys)[0]["reason"].startswith("the check failed (RuntimeError(")


def test_messages_waiting_for_their_eta_are_counted_until_they_fall_due(
    channel: Any, redis_keys: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(channel, "max_eta_messages", 2)
    soon = (datetime.now(UTC) + timedelta(seconds=channel.max_eta_seconds / 2)).isoformat()
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    for n in range(2):
        assert channel._admit(encode(task_message(task_id=f"soon-{n}", eta=soon)), "lookups")
    assert channel._admit(encode(task_message(eta=past)), "lookups")  # due: not held
    assert channel._admit(encode(task_message()), "lookups")  # no ETA: not held
    assert channel._admit(encode(task_message(task_id="third", eta=soon)), "lookups") is None
    assert kept(redis_keys)[0]["reason"] == (
        "2 messages already wait for their ETA, the most one worker holds"
    )
    channel._waiting[:] = [datetime.now(UTC).timestamp() - 1] * 2  # both fell due
    assert channel._admit(encode(task_message(task_id="fourth", eta=soon)), "lookups")
