"""A worker node's metrics listener: one HTTP port per node, a bearer key beyond loopback.

    server = serve(registry, "127.0.0.1", 9540, keys=())   # GET /metrics, in a thread
    server.shutdown()

Every listener of zipscore beyond loopback asks for a key: with keys configured
(ZIPSCORE_METRICS_KEYS(_FILE), keys that read metrics and nothing else; else the gateway's API
keys) a scrape without `Authorization: Bearer <key>` is answered 401, whatever the address;
the settings refuse a non-loopback address without keys. Keys are compared as SHA-256
digests with `hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

if TYPE_CHECKING:  # the settings import this module: prometheus-client only when serving
    from prometheus_client import CollectorRegistry
    from prometheus_client.exposition import ThreadingWSGIServer

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def guarded(app: Callable[..., Any], keys: Iterable[str]) -> Callable[..., Any]:
    """`app` behind the bearer keys (as is when there are none)."""
    digests = tuple(_digest(key) for key in keys)
    if not digests:
        return app

    def check(environ: Environ, start_response: StartResponse) -> Any:
        header = str(environ.get("HTTP_AUTHORIZATION", ""))
        scheme, _, presented = header.partition(" ")
        given = _digest(presented.strip())
        matched = False
        for digest in digests:  # every key compared: the time says nothing of which matched
            matched |= hmac.compare_digest(given, digest)
        if scheme.lower() == "bearer" and matched:
            return app(environ, start_response)
        start_response(
            "401 Unauthorized",
            [("Content-Type", "text/plain"), ("WWW-Authenticate", 'Bearer realm="zipscore"')],
        )
        return [b"an API key is needed: send Authorization: Bearer <key>\n"]

    return check


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds are not worth a log line each."""


def serve(
    registry: CollectorRegistry, host: str, port: int, keys: Iterable[str]
) -> ThreadingWSGIServer:
    """Serve `registry` at http://host:port/metrics from a daemon thread."""
    from prometheus_client import make_wsgi_app
    from prometheus_client.exposition import ThreadingWSGIServer

    app = guarded(make_wsgi_app(registry), keys)
    server = make_server(host, port, app, ThreadingWSGIServer, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    return server
