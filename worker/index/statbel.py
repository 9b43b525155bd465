"""The Statbel beSTAT source: one bounded HTTP GET of the health index document.

Faults are sorted into two kinds so the refresh task can choose: `SourceUnavailable` (network
errors, timeouts, 5xx, 429: worth retrying later) and `SourceRefused` (other 4xx, a body over
the size cap: retrying would get the same answer). The body is streamed and counted, so
10 MB of junk is refused after the first few megabytes without ever being held whole.
"""

from __future__ import annotations

import time

import httpx

from worker.contract.errors import echo
from worker.contract.settings import Settings, get_settings

USER_AGENT = "zipscore-health-index/0.1 (+https://statbel.fgov.be)"


class SourceUnavailable(Exception):
    """A transient fault of the source; the refresh is retried with backoff."""


class SourceRefused(Exception):
    """The source answered, but not with something usable; retrying would not help."""


class StatbelSource:
    """Fetches the beSTAT JSON document from one URL, within a deadline and a size cap."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        max_bytes: int,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url
        parsed = httpx.URL(url)
        # Named in every fault by host and port only: the URL's path, query and userinfo may
        # hold a token or a password.
        self.name = f"Statbel ({parsed.host}{f':{parsed.port}' if parsed.port else ''})"
        self._secret = parsed.userinfo.decode()
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._transport = transport

    def fetch(self) -> bytes:
        """The raw body of a 200 answer.

        Raises:
            SourceUnavailable: connection failure, timeout (per operation or overall),
                a 5xx or 429 answer.
            SourceRefused: any other non-200 answer, or a body larger than `max_bytes`.
        """
        deadline = time.monotonic() + self.timeout
        try:
            with (
                httpx.Client(
                    timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 5.0)),
                    headers={"Accept": "application/json", "User-Agent": USER_AGENT},
                    follow_redirects=True,
                    max_redirects=3,
                    transport=self._transport,
                ) as client,
                client.stream("GET", self.url) as response,
            ):
                self._check_status(response)
                return self._read_capped(response, deadline)
        except httpx.TooManyRedirects:
            raise SourceRefused(f"{self.name}: too many redirects") from None
        except (httpx.TransportError, httpx.StreamError) as exc:
            # The cause as the OS or httpx gave it ("[Errno 111] Connection refused"), one
            # capped line: it tells an unreachable host from a refused port or a DNS failure.
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            if self._secret:
                detail = detail.replace(self._secret, "***")
            cause = f"{type(exc).__name__} {echo(detail)}" if detail else type(exc).__name__
            raise SourceUnavailable(f"{self.name} unreachable: {cause}") from None

    def _check_status(self, response: httpx.Response) -> None:
        status = response.status_code
        if status == 429 or status >= 500:
            raise SourceUnavailable(f"{self.name} answered HTTP {status}")
        if status != 200:
            raise SourceRefused(f"{self.name} answered HTTP {status}")
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise SourceRefused(f"{self.name}: the document is larger than {self.max_bytes} bytes")

    def _read_capped(self, response: httpx.Response, deadline: float) -> bytes:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self.max_bytes:
                raise SourceRefused(
                    f"{self.name}: the document is larger than {self.max_bytes} bytes"
                )
            # httpx's timeouts are per read: a server dripping bytes would never trip them.
            if time.monotonic() > deadline:
                raise SourceUnavailable(f"{self.name} took longer than {self.timeout:g} s")
            chunks.append(chunk)
        return b"".join(chunks)


def source_from_settings(settings: Settings | None = None) -> StatbelSource:
    """The source configured by ZIPSCORE_STATBEL_URL and its timeout and size cap."""
    settings = settings or get_settings()
    return StatbelSource(
        str(settings.statbel_url),
        timeout=settings.statbel_timeout_seconds,
        max_bytes=settings.statbel_max_bytes,
    )
