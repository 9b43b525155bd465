"""The broker message check (worker/broker/envelope.py), on raw bytes, without a broker.

Given the bytes of a message as Redis would hand them to the worker, `check` answers the
envelope kombu may use, or refuses it with one short line. zipscore's own producers (the
client, batches, beat, Celery's retries) must pass; the defects of the hardening issue
(no id, a list, a null delivery tag, an unknown body encoding, a body that is not base64,
a timelimit that is not numbers, a body of 42 or null, Celery's built-in tasks, callbacks
and chains, an ETA in 2999) must be refused, whatever bytes carry them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kombu import Connection

import worker.batch.tasks
import worker.index.tasks
import worker.lookups.tasks  # noqa: F401  (registers the lookup tasks)
from tests.support.messages import CORPUS, mutated, task_message
from worker.beat import beat_schedule
from worker.broker.envelope import Refused, Rules, admit, check
from worker.broker.transport import is_zipscore_task
from worker.celery_app import app
from worker.contract.settings import Settings
from worker.contract.tasks import QUEUES

SETTINGS = Settings()
RULES = Rules(
    task_queues=QUEUES,
    is_task=is_zipscore_task,
    max_eta_seconds=SETTINGS.max_eta,
    max_time_limit=SETTINGS.task_time_limit,
)


def now() -> datetime:
    return datetime.now(UTC)


def raw(message: Any) -> bytes:
    return json.dumps(message).encode()


@pytest.fixture
def sent() -> Iterator[Any]:
    """Send a task through Celery's own producer (memory transport); its raw envelope."""
    with Connection("memory://") as conn:

        def send(name: str, queue: str = "lookups", **options: Any) -> dict[str, Any]:
            app.send_task(name, queue=queue, producer=conn.Producer(), **options)
            message: dict[str, Any] = conn.default_channel._get(queue)
            return message

        yield send


def lookup(**headers: Any) -> dict[str, Any]:
    return task_message(**headers)


def refusal(item: bytes, queue: str = "lookups") -> str:
    with pytest.raises(Refused) as refused:
        check(item, queue, RULES, now())
    reason = refused.value.reason
    assert "\n" not in reason, reason
    assert len(reason) < 160, reason
    return reason


# --- zipscore's own messages pass -------------------------------------------------------


def test_a_lookup_as_the_client_sends_it_passes(sent: Any) -> None:
    message = sent("zipcodes.lookup", args=(9170,))
    assert check(raw(message), "lookups", RULES, now()) == message


@pytest.mark.parametrize(
    ("name", "queue", "options"),
    [
        ("zipcodes.by_risk_factor", "lookups", {"args": ("A",)}),
        ("health.ping", "lookups", {}),
        ("batch.pin_table", "batch", {"args": (None,)}),
        # As producer/batch/runner.py sends it: Celery's argsrepr keeps the "\r\n" as it is.
        ("batch.score_chunk", "batch", {"args": ({"job": "j", "chunk": 0, "newline": "\r\n"},)}),
        ("index.latest", "index", {"args": (2004,)}),
    ],
)
def test_every_zipscore_task_passes(sent: Any, name: str, queue: str, options: Any) -> None:
    message = sent(name, queue, **options)
    assert check(raw(message), queue, RULES, now())["headers"]["task"] == name


def test_beat_s_refresh_passes(sent: Any) -> None:
    entry = beat_schedule(SETTINGS)["index-refresh"]
    message = sent(entry["task"], **entry["options"], kwargs={"if_empty": True})
    assert message["headers"]["expires"] is not None  # a day, so a late one is superseded
    assert check(raw(message), "index", RULES, now())["headers"]["task"] == "index.refresh"


def test_a_retry_at_the_longest_countdown_passes_and_one_beyond_is_refused(sent: Any) -> None:
    retry = sent("index.refresh", "index", countdown=SETTINGS.retry_countdown, retries=5)
    assert check(raw(retry), "index", RULES, now())["headers"]["retries"] == 5
    later = sent("zipcodes.lookup", args=(9170,), countdown=SETTINGS.max_eta + 60)
    assert refusal(raw(later)).startswith("eta is ")


def test_other_queues_only_need_an_envelope_kombu_can_use() -> None:
    reply = lookup()
    reply["headers"] = {}  # a control reply (Flower's inspect) carries no task headers
    assert check(raw(reply), "abc.reply.celery.pidbox", RULES, now()) == reply
    assert refusal(b"garbage", "abc.reply.celery.pidbox") == "the message is not JSON"


# --- the messages are refused ----------------------------------------------------


def test_a_broadcast_kombu_parsed_is_checked_as_an_envelope() -> None:
    control = json.loads(raw(lookup()))
    control["headers"] = {}
    queue = "celery@host.celery.pidbox"
    assert admit(control, queue, RULES, now()) == control
    for hostile in ([1], {"a": 1}, None, {**control, "content-type": "application/x-yaml"}):
        with pytest.raises(Refused):
            admit(hostile, queue, RULES, now())


@pytest.mark.parametrize(
    ("item", "reason"), [case[1:] for case in CORPUS], ids=[c[0] for c in CORPUS]
)
def test_a_malformed_message_is_refused_with_a_short_reason(item: bytes, reason: str) -> None:
    assert refusal(item).startswith(reason)


def test_a_refusal_names_the_id_and_task_once_they_are_readable() -> None:
    with pytest.raises(Refused) as refused:
        check(raw(lookup(task="celery.chord_unlock")), "lookups", RULES, now())
    assert (refused.value.task_id, refused.value.task) == ("lookup-1", "celery.chord_unlock")
    with pytest.raises(Refused) as unreadable:
        check(b"[]", "lookups", RULES, now())
    assert (unreadable.value.task_id, unreadable.value.task) == (None, None)


def test_an_eta_inside_the_bound_passes() -> None:
    soon = (now() + timedelta(seconds=SETTINGS.max_eta - 1)).isoformat()
    assert check(raw(lookup(eta=soon)), "lookups", RULES, now())["headers"]["eta"] == soon


# --- and whatever else arrives, `check` answers or refuses: nothing else escapes ----------


@settings(max_examples=300, deadline=None)
@given(item=mutated(), queue=st.sampled_from([*QUEUES, "x.reply.celery.pidbox"]))
def test_any_bytes_are_answered_or_refused(item: bytes, queue: str) -> None:
    try:
        envelope = check(item, queue, RULES, now())
    except Refused as refused:
        assert "\n" not in refused.reason
        assert len(refused.reason) < 160
    else:  # kombu builds its Message from these without a KeyError or a TypeError
        assert isinstance(envelope["properties"]["delivery_info"], dict)
        assert isinstance(envelope["properties"]["delivery_tag"], str)
