"""Raw broker messages for the hostile-message tests: the unit tier and the drill share them.

`task_message` writes a task envelope as Celery 5 writes it onto a Redis list; `CORPUS` holds
the malformed messages of the hardening issue and more, each with the start of the reason
the worker gives when it refuses it; `mutated` is a hypothesis strategy for more of them.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import strategies as st

from worker.broker.envelope import MAX_ENVELOPE_BYTES

CANVAS = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
# What a chain or a callback would run next: the health index refresh.
LINK = [{"task": "index.refresh", "args": [], "kwargs": {}, "options": {}}]


def encode(message: Any) -> bytes:
    return json.dumps(message).encode()


def task_message(
    task: str = "zipcodes.lookup",
    args: Any = (9170,),
    task_id: str = "lookup-1",
    queue: str = "lookups",
    body: Any = None,
    **headers: Any,
) -> dict[str, Any]:
    """A protocol 2 task envelope (JSON body, base64), `headers` changed from Celery's."""
    content = [list(args), {}, dict(CANVAS)] if body is None else body
    return {
        "body": base64.b64encode(json.dumps(content).encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py",
            "task": task,
            "id": task_id,
            "shadow": None,
            "eta": None,
            "expires": None,
            "group": None,
            "group_index": None,
            "retries": 0,
            "timelimit": [None, None],
            "root_id": task_id,
            "parent_id": None,
            "argsrepr": repr(tuple(args)),
            "kwargsrepr": "{}",
            "origin": "gen1@drill",
            "ignore_result": None,
            "replaced_task_nesting": 0,
            "stamped_headers": None,
            "stamps": {},
            **headers,
        },
        "properties": {
            "correlation_id": task_id,
            "reply_to": "drill",
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": f"tag-{task_id}",
        },
    }


def changed(message: dict[str, Any], *path: str, value: Any = None, drop: bool = False) -> bytes:
    """`message` with the field at `path` set to `value` (or removed), encoded."""
    target = message
    for key in path[:-1]:
        target = target[key]
    if drop:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return encode(message)


def _message(**options: Any) -> dict[str, Any]:
    return task_message(**{"task_id": "poison", **options})


# (name, raw bytes, the start of the refusal's reason)
CORPUS: list[tuple[str, bytes, str]] = [
    ("no id", changed(_message(), "headers", "id", drop=True), "the task id None is missing"),
    ("garbage", b"garbage", "the message is not JSON"),
    ("not UTF-8", b'{"body": "\xff\xfe"}', "the message is not UTF-8"),
    ("a list", encode([_message()]), "the message is a JSON list, not an object"),
    ("42", b"42", "the message is a JSON int, not an object"),
    ("null", b"null", "the message is a JSON NoneType, not an object"),
    ("empty", b"", "the message is not JSON"),
    ("null tag", changed(_message(), "properties", "delivery_tag"), "the delivery tag None is not"),
    ("rot13", changed(_message(), "properties", "body_encoding", value="rot13"),
     "body encoding 'rot13'"),
    ("not base64", changed(_message(), "body", value="!!!"), "the body is not base64"),
    ("timelimit x", changed(_message(), "headers", "timelimit", value="x"), "timelimit 'x' is not"),
    ("body 42", changed(_message(), "body", value=42), "the body is not a non-empty string"),
    ("body null", changed(_message(), "body"), "the body is not a non-empty string"),
    ("chord_unlock", encode(_message(task="celery.chord_unlock", args=("group-1",))),
     "task 'celery.chord_unlock' is not a zipscore task"),
    ("starmap", encode(_message(task="celery.starmap", args=({"task": "index.refresh"}, [[]] * 5))),
     "task 'celery.starmap' is not a zipscore task"),
    ("unknown task", encode(_message(task="zipcodes.nope")), "task 'zipcodes.nope' is not"),
    ("callbacks", encode(_message(body=[[9170], {}, {**CANVAS, "callbacks": LINK}])),
     "the task carries callbacks"),
    ("chain", encode(_message(body=[[9170], {}, {**CANVAS, "chain": LINK}])),
     "the task carries chain"),
    ("chord", encode(_message(body=[[9170], {}, {**CANVAS, "chord": LINK[0]}])),
     "the task carries chord"),
    ("eta 2999", encode(_message(eta="2999-01-01T00:00:00+00:00")), "eta is "),
    ("eta x", encode(_message(eta="x")), "eta 'x' is not an ISO 8601 time"),
    ("naive eta", encode(_message(eta="2026-01-01T00:00:00")), "eta '2026-01-01T00:00:00' has no"),
    ("expires 42", encode(_message(expires=42)), "expires 42 is not an ISO 8601 time"),
    ("protocol 1", encode(_message(body={"task": "zipcodes.lookup", "args": [9170]})),
     "the task body is not [args, kwargs, embed]"),
    ("body not JSON", changed(_message(), "body", value=base64.b64encode(b"\x80abc").decode()),
     "the task body is not JSON"),
    ("pickle", changed(_message(), "content-type", value="application/x-python-serialize"),
     "content type "),
    ("id with a newline", changed(_message(), "headers", "id", value="a\nb"),
     "the task id 'a\\nb' is missing"),
    ("retries x", encode(_message(retries="x")), "retries 'x' is not a count"),
    ("timelimit 1e9", encode(_message(timelimit=[None, 1e9])), "timelimit [None, 1000000000.0]"),
    ("shadow", encode(_message(shadow="zipcodes.lookup")), "header shadow is set"),
    ("group", encode(_message(group="g-1")), "header group is set"),
    ("stamped", encode(_message(stamped_headers=42)), "the message is stamped"),
    ("no properties", changed(_message(), "properties", drop=True), "the properties are not"),
    ("headers a list", changed(_message(), "headers", value=[]), "the headers are not an object"),
    ("no delivery info", changed(_message(), "properties", "delivery_info", value=[]),
     "the delivery info is not"),
    ("nested", b"[" * 100_000 + b"]" * 100_000, "the message is nested too deeply"),
    ("huge", encode({"body": "A" * MAX_ENVELOPE_BYTES}), "message of "),
]  # fmt: skip

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)  # fmt: skip
_FIELDS = [
    ("body",), ("content-type",), ("content-encoding",), ("headers",), ("properties",),
    ("headers", "id"), ("headers", "task"), ("headers", "eta"), ("headers", "expires"),
    ("headers", "timelimit"), ("headers", "retries"), ("headers", "stamps"),
    ("headers", "stamped_headers"), ("headers", "argsrepr"), ("headers", "shadow"),
    ("properties", "delivery_tag"), ("properties", "body_encoding"),
    ("properties", "delivery_info"), ("properties", "priority"),
]  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn, task_id: str = "generated") -> bytes:
    """Any bytes, or a lookup envelope with a few fields replaced by any JSON value."""
    if draw(st.integers(0, 3)) == 0:
        return draw(st.binary(max_size=200))
    message = task_message(task_id=task_id)
    for path in draw(st.lists(st.sampled_from(_FIELDS), min_size=1, max_size=3)):
        target = message
        for key in path[:-1]:
            target = target[key] if isinstance(target.get(key), dict) else {}
        target[path[-1]] = draw(_JSON)
    return encode(message)
