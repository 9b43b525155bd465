"""The gateway's `/metrics`: the producer's series and the deployment's, for Prometheus.

Served only with ZIPSCORE_METRICS=true (404 otherwise). Who may scrape: with
ZIPSCORE_METRICS_KEYS(_FILE) a holder of one of those keys, which read metrics and nothing
else (Prometheus's key need not be one that can score batches); without them, as every
question route, a holder of an API key when keys are configured. A scrape without a key is
401 (Prometheus sends one with `authorization: {credentials_file: ...}`). A gateway with
neither kind of key listens on loopback only (`zipscore serve` refuses otherwise), so no
listener beyond loopback answers a scrape unasked.
The body is built on a thread: the deployment's series cost a Redis round trip.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from fastapi import Depends, FastAPI
from fastapi.params import Depends as Dependency
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from producer import metrics
from producer.gateway.auth import ApiKeys
from worker.contract.metrics import DeploymentCollector
from worker.contract.settings import Settings


def registry_for(settings: Settings) -> CollectorRegistry:
    """The process's own series (the producer's, process_* and python_*) and the
    deployment's, read at scrape time."""
    registry = CollectorRegistry()
    registry.register(_Everything())
    registry.register(DeploymentCollector.from_settings(settings))
    return registry


class _Everything:
    """The default registry's collectors, as one (so a registry per app can add its own)."""

    def collect(self):  # type: ignore[no-untyped-def]
        return REGISTRY.collect()


def install(app: FastAPI, settings: Settings, guarded: Sequence[Dependency]) -> None:
    if not settings.metrics:
        return
    metrics.record(True)
    registry = registry_for(settings)

    async def scrape() -> Response:
        body = await asyncio.to_thread(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    if settings.metrics_keys:
        guarded = [Depends(ApiKeys(settings.metrics_keys).dependency())]
    app.add_api_route(
        "/metrics",
        scrape,
        methods=["GET"],
        dependencies=list(guarded),
        include_in_schema=False,
        response_class=Response,
    )
