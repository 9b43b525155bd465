"""Serve a health index document on loopback, so the index works without Statbel.

    python -m ops.statbel_fixture                 # tests/fixtures/bestat-health-index.json
    python -m ops.statbel_fixture --port 8099 --document saved-bestat.json

Then start the workers with the URL it prints (`ZIPSCORE_STATBEL_URL=... make run`): beat's
start-up refresh, or `zipscore index refresh`, stores the document's months. The default
document is the test fixture: Statbel's shape, but only the September 2021 values of bases
1996, 2004 and 2013 are published figures; the other months are made up (see
tests/fixtures/README.md). Only 127.0.0.1 is ever bound, and only the document's one path
is answered (404 elsewhere). Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "bestat-health-index.json"
DEFAULT_PORT = 8099
HOST = "127.0.0.1"


def handler_for(body: bytes, path: str) -> type[BaseHTTPRequestHandler]:
    """A request handler answering `body` as JSON at `path`, and 404 at any other path."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != path:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            sys.stderr.write(f"statbel fixture: {format % args}\n")

    return Handler


def serve(document: Path, port: int) -> ThreadingHTTPServer:
    """A server for `document` on 127.0.0.1:`port` (0: any free port), not yet running."""
    path = f"/{document.name}"
    return ThreadingHTTPServer((HOST, port), handler_for(document.read_bytes(), path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.statbel_fixture", description=__doc__)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="default 8099")
    parser.add_argument("--document", type=Path, default=FIXTURE, help="a beSTAT JSON document")
    args = parser.parse_args(argv)
    try:
        server = serve(args.document, args.port)
    except OSError as exc:  # a missing document, a port in use
        print(f"statbel fixture: {exc}", file=sys.stderr)
        return 1
    host, port = HOST, server.server_address[1]
    print(f"serving {args.document} at http://{host}:{port}/{args.document.name}", flush=True)
    print(
        f"start the workers with ZIPSCORE_STATBEL_URL=http://{host}:{port}/{args.document.name}",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
