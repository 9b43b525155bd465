"""Traces cross the queue: a question asked under a span, its task run by the real embedded
worker (through Redis), and the worker's Redis and Postgres calls are one trace, caught by
OpenTelemetry's in-memory exporter."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from producer.client import Client
from worker import runtime
from worker.contract import log_setup, tracing
from worker.database import pool as db


@pytest.fixture
def exporter(celery_worker: object) -> Iterator[InMemorySpanExporter]:
    caught = InMemorySpanExporter()
    assert tracing.setup("zipscore-test", caught, batch=False)
    fresh_pool()  # its connections made by the instrumented psycopg
    yield caught
    tracing.shutdown()
    fresh_pool()


def fresh_pool() -> None:
    """A new pool, and stores that use it (the old ones hold the closed pool)."""
    db.close_pool()
    runtime.use()
    runtime.use_index()


def ancestors(span: ReadableSpan, spans: dict[int, ReadableSpan]) -> list[str]:
    names = []
    while span.parent is not None and span.parent.span_id in spans:
        span = spans[span.parent.span_id]
        names.append(span.name)
    return names


def test_a_question_is_one_trace_from_producer_to_worker_redis_and_postgres(
    exporter: InMemorySpanExporter,
) -> None:
    client = Client()
    with tracing.span("test.request"):
        answer = client.call("zipcodes.by_risk_factor", "A")  # the queue, always
    assert answer["risk_factor"] == "A"

    spans = exporter.get_finished_spans()
    root = next(span for span in spans if span.name == "test.request")
    trace = [span for span in spans if span.context.trace_id == root.context.trace_id]
    by_id = {span.context.span_id: span for span in trace}
    published = [s for s in trace if s.kind is SpanKind.PRODUCER]
    ran = [s for s in trace if s.kind is SpanKind.CONSUMER and "zipcodes.by_risk_factor" in s.name]
    assert len(published) == 1
    assert len(ran) == 1
    assert ran[0].parent is not None
    assert ran[0].parent.span_id == published[0].context.span_id  # carried in the message
    task = ran[0].name
    inside = [s for s in trace if task in ancestors(s, by_id)]
    systems = {
        str(s.attributes.get("db.system", s.attributes.get("db.system.name")))
        for s in inside
        if s.attributes
    }
    assert {"redis", "postgresql"} <= systems, [(s.name, dict(s.attributes or {})) for s in inside]


def test_json_log_lines_carry_the_trace_and_span_ids(exporter: InMemorySpanExporter) -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        log_setup.configure(logging.INFO, "json", stream)
        with tracing.span("test.logged"):
            logging.getLogger("zipscore.test").info("inside a span")
        logging.getLogger("zipscore.test").info("outside")
    finally:
        root.handlers[:], root.level = saved
    events = {e["message"]: e for e in map(json.loads, stream.getvalue().splitlines())}
    span = next(s for s in exporter.get_finished_spans() if s.name == "test.logged")
    assert events["inside a span"]["trace_id"] == f"{span.context.trace_id:032x}"
    assert events["inside a span"]["span_id"] == f"{span.context.span_id:016x}"
    assert "trace_id" not in events["outside"]


def test_traces_are_off_by_default() -> None:
    assert not tracing.setup("zipscore-test")  # OTEL_TRACES_EXPORTER is not set here
    with tracing.span("nothing"):
        assert tracing.current_ids() is None
