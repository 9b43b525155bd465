"""OpenTelemetry traces: a question followed from its producer through the queue to the
worker's task and its Redis and Postgres calls, as one trace.

Off by default: nothing is instrumented and `span()` is a no-op. On when the standard
OTEL_TRACES_EXPORTER names an exporter (`console`, or `otlp` with the
opentelemetry-exporter-otlp package installed); OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES,
OTEL_EXPORTER_OTLP_* and OTEL_SDK_DISABLED are read by the SDK as everywhere.

    tracing.setup("zipscore-producer")        # once per process (the worker: per pool child)
    with tracing.span("zipscore.lookup"):     # the producer's span: send_task is its child
        ...

Celery's instrumentation puts the trace context in each message's headers when it is
published and continues it in the worker's task; Redis's and psycopg's give their calls
spans of their own. Tests pass an in-memory exporter to `setup`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

logger = logging.getLogger(__name__)


@dataclass
class _State:
    provider: TracerProvider | None = None
    pid: int = 0
    instrumentors: tuple[Any, ...] = ()


_state = _State()


def _exporter_from_environment() -> SpanExporter | None:
    names = os.environ.get("OTEL_TRACES_EXPORTER", "none").strip().lower()
    if names in {"", "none"} or os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    if names == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if names == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found]
                OTLPSpanExporter,
            )
        except ImportError:
            logger.warning("OTEL_TRACES_EXPORTER=otlp needs opentelemetry-exporter-otlp: no traces")
            return None
        otlp: SpanExporter = OTLPSpanExporter()
        return otlp
    logger.warning("OTEL_TRACES_EXPORTER=%s is not supported (console, otlp): no traces", names)
    return None


def setup(service: str, exporter: SpanExporter | None = None, *, batch: bool = True) -> bool:
    """Instrument Celery, Redis and psycopg in this process when traces are on (an exporter
    given, or named by OTEL_TRACES_EXPORTER); False when they are off."""
    if _state.provider is not None and _state.pid == os.getpid():
        return True
    exporter = exporter or _exporter_from_environment()
    if exporter is None:
        return False
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME") or service})
    provider = TracerProvider(resource=resource)
    processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    instrumentors = (CeleryInstrumentor(), RedisInstrumentor(), PsycopgInstrumentor())  # type: ignore[no-untyped-call]
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=provider)
    _state.provider, _state.pid, _state.instrumentors = provider, os.getpid(), instrumentors
    return True


def shutdown() -> None:
    """Flush and stop: the instrumentations are removed (tests)."""
    for instrumentor in _state.instrumentors:
        instrumentor.uninstrument()
    if _state.provider is not None:
        _state.provider.shutdown()
    _state.provider, _state.pid, _state.instrumentors = None, 0, ()


def tracer() -> Any:
    """This process's tracer, or None while traces are off."""
    provider = _state.provider
    return None if provider is None else provider.get_tracer("zipscore")


@contextlib.contextmanager
def span(name: str, **attributes: str | int) -> Iterator[None]:
    """A span of this process's tracer around the block; nothing at all when traces are off."""
    provider = _state.provider
    if provider is None:
        yield
        return
    tracer = provider.get_tracer("zipscore")
    with tracer.start_as_current_span(name, attributes=attributes):
        yield


def current_ids() -> tuple[str, str] | None:
    """The current trace and span ids (hex), or None outside a recorded span."""
    if _state.provider is None:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"
