"""The event loop stays free: a slow lookup on a thread does not stall /healthz, and the
blocking variant (the control) does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
from fastapi import FastAPI

from producer.client import Client
from producer.gateway import app as gateway
from producer.gateway.offload import Offload

# -- the event loop stays free ----------------------------------------------------------


def slow_lookup_app(client: Client, offload: Offload | None) -> FastAPI:
    def slow(zipcode: object, **_: object) -> dict[str, Any]:
        time.sleep(1.0)  # a cold cache and a busy worker
        return {"zipcode": 9000, "risk_factor": "B", "exists": True}

    client.lookup = slow  # type: ignore[assignment,method-assign]
    client.timeout = 5.0  # the gateway's deadline: well past the slow lookup
    return gateway.create_app(client.settings, client=client, offload=offload)


async def healthz_while_a_lookup_waits(app: FastAPI) -> float:
    """Seconds from sending a 1 s lookup to /healthz's answer, sent 0.05 s after it."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        began = time.perf_counter()
        lookup = asyncio.create_task(http.get("/zipcodes/9000"))
        await asyncio.sleep(0.05)  # the lookup is under way
        health = await http.get("/healthz")
        waited = time.perf_counter() - began
        assert health.status_code == 200
        assert (await lookup).status_code == 200
    return waited


def test_a_slow_lookup_does_not_stall_healthz(client: Client) -> None:
    waited = asyncio.run(healthz_while_a_lookup_waits(slow_lookup_app(client, None)))
    assert waited < 0.6  # far below the 1 s lookup, with room for a loaded CI machine


def test_the_blocking_variant_would_stall_it(client: Client) -> None:
    """The control: the same call made on the loop (the ancestor's design) stalls /healthz."""

    async def inline(call: Callable[[], Any]) -> Any:
        return call()

    waited = asyncio.run(healthz_while_a_lookup_waits(slow_lookup_app(client, inline)))
    assert waited > 0.95
