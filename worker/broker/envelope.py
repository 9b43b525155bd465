"""The rules a raw broker message must meet before kombu and Celery are given it.

kombu's Redis transport turns whatever bytes it pops from a queue into a `Message`, and
Celery's consumer into a task request; bytes no Python producer would write made either
raise outside every handler (the worker exited), or loop on one message forever. `check`
reads the raw bytes first and answers the parsed envelope, or raises `Refused` with a
short reason that never quotes the body. worker/broker/transport.py calls it for every
message popped, before kombu sees it.

Every queue's messages must be envelopes kombu can build a `Message` from. Messages on
zipscore's task queues must also be tasks as zipscore sends them: protocol 2, JSON, a
registered zipscore task (Celery's built-in `celery.*` tasks are refused: zipscore uses
none), no canvas (callbacks, errbacks, chain, chord, group), an ETA no farther than the
bound in `Rules`, and headers Celery can parse (id, timelimit, expires, retries).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from celery.utils.time import maybe_iso8601
from kombu.utils.json import loads

# An envelope is a few hundred bytes of headers around a base64 body of at most
# worker/task_guard.py's 16 KiB of arguments: 1 MiB leaves room and is never parsed beyond.
MAX_ENVELOPE_BYTES = 1_048_576
# A retry's ETA is computed on the sending worker's clock, checked against this one's.
CLOCK_SKEW_SECONDS = 5.0
# Celery's ids are UUIDs; producers may choose their own (drills do). They show in log
# lines and result keys: no spaces, no control characters, bounded.
_ID = re.compile(r"[A-Za-z0-9._:@-]{1,128}")
_TEXT_LIMIT = 4_096  # argsrepr, kwargsrepr: Celery's saferepr caps them at 1 KiB
_MAX_RETRIES_HEADER = 1_000
_CANVAS = ("callbacks", "errbacks", "chain", "chord")
_CONTENT = ("application/json", "utf-8")
_BODY_ENCODINGS = ("base64",)


class Refused(ValueError):
    """A message refused before kombu saw it; `reason` is one short line, no body."""

    def __init__(self, reason: str, task_id: str | None = None, task: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.task_id = task_id
        self.task = task


@dataclass(frozen=True)
class Rules:
    """What a message must meet: which queues carry tasks and which tasks, limits."""

    task_queues: Collection[str]
    is_task: Callable[[str], bool]
    max_eta_seconds: float
    max_time_limit: float
    max_bytes: int = MAX_ENVELOPE_BYTES


def shown(value: object, limit: int = 60) -> str:
    """`value` for a log line: its repr, one line, at most `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def check(item: bytes, queue: str, rules: Rules, now: datetime) -> dict[str, Any]:
    """The envelope `item` popped from `queue`, parsed, or Refused.

    `now` must be timezone-aware: an ETA more than `rules.max_eta_seconds` after it (and
    the clock-skew allowance) is refused.
    """
    return admit(_parse(item, rules.max_bytes), queue, rules, now)


def admit(envelope: object, queue: str, rules: Rules, now: datetime) -> dict[str, Any]:
    """`envelope` already parsed (a broadcast's: kombu parses those itself), or Refused."""
    if not isinstance(envelope, dict):
        raise Refused(f"the message is a JSON {type(envelope).__name__}, not an object")
    properties = _properties(envelope)
    body = envelope.get("body")
    if not isinstance(body, str) or not body:
        raise Refused("the body is not a non-empty string")
    raw = _decode_body(body, properties.get("body_encoding"))
    if queue not in rules.task_queues:  # a control reply or broadcast: JSON, as Celery's
        _content(envelope)
        _json(raw, "the body")
        return envelope
    headers = envelope.get("headers")
    if not isinstance(headers, dict):
        raise Refused("the headers are not an object")
    task_id, task = headers.get("id"), headers.get("task")
    if not isinstance(task_id, str) or not _ID.fullmatch(task_id):
        raise Refused(f"the task id {shown(task_id)} is missing or not an id", task=_name(task))
    try:
        _task_headers(headers, rules, now)
        _content(envelope)
        _task_body(_json(raw, "the task body"))
    except Refused as refused:
        raise Refused(refused.reason, task_id, _name(task)) from None
    return envelope


def eta_of(envelope: dict[str, Any]) -> datetime | None:
    """The ETA of an envelope `check` passed, or None."""
    headers = envelope.get("headers")
    return _moment(headers, "eta") if isinstance(headers, dict) else None


def _content(envelope: dict[str, Any]) -> None:
    if (envelope.get("content-type"), envelope.get("content-encoding")) != _CONTENT:
        raise Refused(
            f"content type {shown(envelope.get('content-type'), 40)} "
            f"({shown(envelope.get('content-encoding'), 20)}) is not JSON in UTF-8"
        )


def _name(task: object) -> str | None:
    return task if isinstance(task, str) and _ID.fullmatch(task) else None


def _parse(item: bytes, limit: int) -> object:
    if len(item) > limit:
        raise Refused(f"message of {len(item)} bytes is over the {limit}-byte limit")
    try:
        envelope: object = loads(item)  # type: ignore[no-untyped-call]
    except UnicodeDecodeError:
        raise Refused("the message is not UTF-8") from None
    except RecursionError:
        raise Refused("the message is nested too deeply") from None
    except Exception:  # json's and kombu's own type hooks raise several kinds
        raise Refused("the message is not JSON") from None
    return envelope


def _properties(envelope: dict[str, Any]) -> dict[str, Any]:
    properties = envelope.get("properties")
    if not isinstance(properties, dict):
        raise Refused("the properties are not an object")
    tag = properties.get("delivery_tag")
    # kombu keys its unacknowledged-message hash by this tag.
    if not isinstance(tag, str) or not _ID.fullmatch(tag):
        raise Refused(f"the delivery tag {shown(tag)} is not a tag")
    info = properties.get("delivery_info")
    if not isinstance(info, dict) or not all(
        isinstance(info.get(key), str) for key in ("exchange", "routing_key")
    ):
        raise Refused("the delivery info is not an exchange and a routing key")
    return properties


def _decode_body(body: str, encoding: object) -> bytes:
    if encoding not in _BODY_ENCODINGS:
        raise Refused(f"body encoding {shown(encoding, 30)} is not base64")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise Refused("the body is not base64") from None


def _task_headers(headers: dict[str, Any], rules: Rules, now: datetime) -> None:
    task = headers.get("task")
    if not isinstance(task, str) or not rules.is_task(task):
        raise Refused(f"task {shown(task)} is not a zipscore task")
    for key in ("shadow", "group", "chord"):
        if headers.get(key) is not None:
            raise Refused(f"header {key} is set: zipscore sends none")
    # Celery iterates these when it checks for revocations; zipscore stamps nothing.
    if headers.get("stamped_headers") or headers.get("stamps") not in (None, {}):
        raise Refused("the message is stamped: zipscore stamps nothing")
    _limits(headers.get("timelimit"), rules.max_time_limit)
    eta = _moment(headers, "eta")
    if eta is not None:
        ahead = (eta - now).total_seconds()
        if ahead > rules.max_eta_seconds + CLOCK_SKEW_SECONDS:
            raise Refused(f"eta is {ahead:.0f} s ahead, over the {rules.max_eta_seconds:g} s limit")
    _moment(headers, "expires")
    retries = headers.get("retries", 0)
    if type(retries) is not int or not 0 <= retries <= _MAX_RETRIES_HEADER:
        raise Refused(f"retries {shown(retries, 30)} is not a count")
    for key in ("argsrepr", "kwargsrepr"):
        # Celery's saferepr keeps control characters (a batch's "\r\n" newline): a length only.
        text = headers.get(key)
        if text is not None and (not isinstance(text, str) or len(text) > _TEXT_LIMIT):
            raise Refused(f"header {key} is not a short text")


def _limits(value: object, longest: float) -> None:
    if value is None:
        return
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise Refused(f"timelimit {shown(value, 30)} is not [soft, hard]")
    for limit in value:
        if limit is None:
            continue
        if type(limit) not in (int, float) or not math.isfinite(limit) or not 0 < limit <= longest:
            raise Refused(f"timelimit {shown(value, 30)} is not within (0, {longest:g}] s")


def _moment(headers: dict[str, Any], key: str) -> datetime | None:
    value = headers.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise Refused(f"{key} {shown(value, 40)} is not an ISO 8601 time")
    try:
        moment: datetime | None = maybe_iso8601(value)
    except (ValueError, TypeError, OverflowError):
        raise Refused(f"{key} {shown(value, 40)} is not an ISO 8601 time") from None
    if moment is None:
        raise Refused(f"{key} {shown(value, 40)} is not an ISO 8601 time")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise Refused(f"{key} {shown(value, 40)} has no time zone")
    return moment


def _json(raw: bytes, what: str) -> object:
    try:
        body: object = loads(raw)  # type: ignore[no-untyped-call]
    except RecursionError:
        raise Refused(f"{what} is nested too deeply") from None
    except Exception:  # as in _parse
        raise Refused(f"{what} is not JSON") from None
    return body


def _task_body(body: object) -> None:
    # Protocol 2, as Celery 4+ sends it: [args, kwargs, embed].
    if not (
        isinstance(body, list)
        and len(body) == 3
        and isinstance(body[0], list)
        and isinstance(body[1], dict)
        and isinstance(body[2], dict | None)
    ):
        raise Refused("the task body is not [args, kwargs, embed]")
    embed = body[2] or {}
    for key in _CANVAS:
        if embed.get(key):
            raise Refused(f"the task carries {key}: zipscore runs no canvas")
