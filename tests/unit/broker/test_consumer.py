"""The worker's consumer: a message whose body cannot be decoded is one log line, dropped."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from kombu.exceptions import DecodeError
from kombu.message import Message

from worker.broker.consumer import RefusingConsumer

BODY = b'{"args": [9000], "secret": "s3cr3t-token"'  # cut short: not JSON


class _Consumer:
    """Just what `on_decode_error` reads from a consumer."""

    connection_errors: tuple[type[BaseException], ...] = ()


def test_a_body_that_is_not_json_is_one_line_without_the_body_or_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """It was CRITICAL "Can't decode message body", a traceback and a dump of the body."""
    rejected: list[bool] = []
    message: Any = Message(
        body=BODY,
        content_type="application/json",
        content_encoding="utf-8",
        headers={"id": "bad-json-1", "task": "zipcodes.lookup"},
    )
    message.reject = lambda requeue=False: rejected.append(requeue)
    message.ack = lambda: rejected.append(True)  # what Celery's own handler does
    try:
        message.decode()
    except DecodeError as exc:
        error: Exception = exc
    with caplog.at_level(logging.DEBUG):
        consumer: Any = _Consumer()
        RefusingConsumer.on_decode_error(consumer, message, error)
    records = [(r.levelname, r.getMessage(), r.exc_info) for r in caplog.records]
    assert records == [
        (
            "ERROR",
            "refused message id=bad-json-1 task=zipcodes.lookup content_type=application/json:"
            " the body cannot be decoded (DecodeError)",
            None,
        )
    ]
    assert rejected == [False]  # dropped, never delivered again
    assert "s3cr3t" not in caplog.text


def test_without_the_override_celery_logs_critical_with_the_body(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The control: Celery's own handler, on the same message."""
    from celery.worker.consumer import Consumer

    class Plain:
        on_decode_error = Consumer.on_decode_error

    message: Any = Message(
        body=BODY, content_type="application/json", content_encoding="utf-8", headers={}
    )
    message.ack = lambda: None
    with caplog.at_level(logging.DEBUG):
        Plain().on_decode_error(message, ValueError("Expecting ',' delimiter"))
    assert caplog.records[0].levelname == "CRITICAL"
    assert "s3cr3t" in caplog.text
