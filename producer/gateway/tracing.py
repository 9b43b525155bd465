"""The gateway's request spans, when traces are on (worker/contract/tracing.py): one SERVER
span per HTTP request, continuing a caller's W3C `traceparent`, so a question asked of the
gateway is one trace down to the worker's Redis and Postgres calls. Not installed at all
while traces are off."""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from worker.contract import tracing


class RequestSpans:
    """ASGI middleware: `GET /zipcodes/{zipcode}` spans with the method, route and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracer = tracing.tracer()
        if scope["type"] != "http" or tracer is None:
            await self.app(scope, receive, send)
            return
        from opentelemetry import propagate
        from opentelemetry.trace import SpanKind

        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        method = scope["method"]
        with tracer.start_as_current_span(
            f"{method} {scope['path']}",
            context=propagate.extract(headers),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": scope["path"]},
        ) as span:

            async def status(message: Message) -> None:
                if message["type"] == "http.response.start":
                    span.set_attribute("http.response.status_code", message["status"])
                await send(message)

            await self.app(scope, receive, status)
            route: Any = scope.get("route")
            if route is not None and hasattr(route, "path"):
                span.update_name(f"{method} {route.path}")
                span.set_attribute("http.route", route.path)


def install(app: Any) -> None:
    """Add the middleware when this process traces."""
    if tracing.tracer() is not None:
        app.add_middleware(RequestSpans)
