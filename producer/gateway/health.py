"""Liveness and readiness: /healthz (the process answers) and /readyz (Redis, a worker and
its Postgres answer), both open to anyone.

    add_health_routes(app, context)
"""

from __future__ import annotations

import asyncio

import redis
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from producer.client import Client
from producer.gateway.context import Context
from producer.gateway.errors import RETRY_AFTER_DEFAULT
from producer.gateway.offload import Offload
from producer.gateway.openapi import RETRY_HEADER, documented_errors, success
from worker.contract.errors import ZipscoreError
from worker.contract.settings import Settings


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    """Each dependency's state (`ok` or why not); `ready` when all are `ok`."""

    ready: bool
    checks: dict[str, str]


def add_health_routes(app: FastAPI, context: Context) -> None:
    @app.get(
        "/healthz",
        response_model=Health,
        responses={200: success({"status": "ok"}), **documented_errors(400)},
        tags=["health"],
        operation_id="liveness",
        summary="Liveness",
        dependencies=context.open,
    )
    async def healthz() -> Health:
        """Liveness: the process answers (nothing else is checked)."""
        return Health(status="ok")

    ready_example = {"ready": True, "checks": {"redis": "ok", "worker": "ok", "postgres": "ok"}}
    not_ready = {
        "ready": False,
        "checks": {"redis": "ok", "worker": "TIMEOUT: ...", "postgres": "unknown"},
    }

    @app.get(
        "/readyz",
        response_model=Readiness,
        responses={
            200: success(ready_example),
            **documented_errors(400),
            503: {
                "model": Readiness,
                "description": "Not ready: the checks say which dependency is not ok",
                "content": {"application/json": {"example": not_ready}},
                "headers": RETRY_HEADER,
            },
        },
        tags=["health"],
        operation_id="readiness",
        summary="Readiness",
        dependencies=context.open,
    )
    async def readyz() -> JSONResponse:
        """Readiness: Redis answers PING, and a worker answers `health.ping` with its Postgres."""
        checks = await readiness(context.client, context.settings, context.probe)
        ready = all(state == "ok" for state in checks.values())
        body = Readiness(ready=ready, checks=checks).model_dump()
        retry = {} if ready else {"Retry-After": str(RETRY_AFTER_DEFAULT)}
        return JSONResponse(body, status_code=200 if ready else 503, headers=retry)


async def readiness(client: Client, settings: Settings, probe: Offload) -> dict[str, str]:
    """Redis (broker and cache) and a worker with its Postgres, checked concurrently."""
    from worker.contract.redis_health import memory_problems
    from worker.contract.result_cache import redis_client

    def ping_redis() -> str:
        problems: list[str] = []
        try:
            for url in {settings.broker, settings.cache}:
                client = redis_client(url)
                client.ping()
                # An evicting or nearly full Redis is not ready: it may drop or refuse work.
                problems += memory_problems(client)
        except redis.RedisError as exc:
            return f"unreachable ({type(exc).__name__})"
        return "; ".join(dict.fromkeys(problems)) or "ok"

    def ping_worker() -> dict[str, str]:
        try:
            answer = client.call("health.ping", timeout=settings.gateway_ready_timeout_seconds)
        except ZipscoreError as exc:
            return {"worker": f"{exc.code.value}: {exc.message}", "postgres": "unknown"}
        return {"worker": str(answer.get("worker")), "postgres": str(answer.get("postgres"))}

    redis_state, worker_states = await asyncio.gather(probe(ping_redis), probe(ping_worker))
    return {"redis": redis_state, **worker_states}
