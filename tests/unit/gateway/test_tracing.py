"""The gateway's request spans: a request is a SERVER span that continues the caller's
traceparent, and the client's question is its child; no middleware while traces are off."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from producer.client import Client
from producer.gateway import app as gateway
from producer.gateway.tracing import RequestSpans
from worker.contract import tracing

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    caught = InMemorySpanExporter()
    assert tracing.setup("zipscore-gateway-test", caught, batch=False)
    yield caught
    tracing.shutdown()


def test_a_request_is_a_server_span_over_the_clients_question(
    client: Client, eager: list[Any], exporter: InMemorySpanExporter
) -> None:
    app = gateway.create_app(client.settings, client=client)
    with TestClient(app) as api:
        assert api.get("/zipcodes/9000", headers={"traceparent": TRACEPARENT}).status_code == 200
    spans = {span.name: span for span in exporter.get_finished_spans()}
    request = spans["GET /zipcodes/{zipcode}"]
    assert request.kind is SpanKind.SERVER
    assert f"{request.context.trace_id:032x}" == CALLER_TRACE  # the caller's trace goes on
    assert request.attributes is not None
    assert request.attributes["http.response.status_code"] == 200
    question = spans["zipscore.lookup"]
    assert question.parent is not None
    assert question.parent.span_id == request.context.span_id


def test_no_request_spans_while_traces_are_off(client: Client) -> None:
    app = gateway.create_app(client.settings, client=client)
    assert all(middleware.cls is not RequestSpans for middleware in app.user_middleware)  # type: ignore[comparison-overlap]
