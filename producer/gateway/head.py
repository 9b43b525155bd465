"""HEAD on every GET route: the ASGI middleware that answers it as GET without the body.

app.add_middleware(HeadAsGet)
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    """HEAD on any route is answered as its GET, without the body (RFC 9110: the same
    status and headers). FastAPI registers GET routes for GET only (405 on HEAD)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        # A copy: the server reads the original scope's method to drop the body itself.
        await self.app({**scope, "method": "GET"}, receive, headers_only)
