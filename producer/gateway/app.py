"""zipscore's HTTP gateway: a thin ASGI front (FastAPI) over the producer client.

    zipscore serve [--host 127.0.0.1] [--port 5000]       # producer.gateway.serve
    uvicorn --factory producer.gateway.app:create_app     # the same app, without the checks
    curl http://127.0.0.1:5000/zipcodes/9000              # OpenAPI at /docs, /openapi.json

Every answer comes from `producer.client.Client`, exactly as the CLI's do; the gateway adds
no business logic, only HTTP: statuses, the contract's error body (`errors`), uploads and
background batch jobs (`batches`, `jobs`).

The event loop never waits on Redis or a worker: a cache hit is read with redis.asyncio
(`cache`, the client's own keys), and every other client call runs on a thread and is
awaited (`offload`), so a slow lookup delays its own request only. Questions (a send and
the wait for a task's result) go through `limits`: at most `ZIPSCORE_GATEWAY_THREADS` at
once, a bounded line, one deadline each. Batch calls (a status, an upload's files) and
readiness probes have threads of their own, so questions that wait out a dead worker hold
up neither.

With API keys configured (`auth`) every route but `/healthz`, `/readyz` and the docs needs
one, and each key may start `ZIPSCORE_GATEWAY_BATCHES_PER_MINUTE` batches a minute. The
OpenAPI document lists, for each operation, exactly the statuses it can answer (`openapi`);
`/docs` and `/redoc` load their scripts from this server (`docs`). HEAD is answered on
every GET route, as GET without the body (`head`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from fastapi import FastAPI

from producer.client import Client
from producer.gateway.auth import ApiKeys
from producer.gateway.batches import add_batch_routes
from producer.gateway.cache import AsyncCacheReader
from producer.gateway.context import Context
from producer.gateway.docs import add_docs_pages
from producer.gateway.errors import install_error_handlers
from producer.gateway.head import HeadAsGet
from producer.gateway.health import add_health_routes
from producer.gateway.index import add_index_route
from producer.gateway.jobs import BatchLauncher
from producer.gateway.limits import BatchRateLimit, QuestionGate
from producer.gateway.lookups import add_lookup_routes
from producer.gateway.offload import Offload, thread_offload
from producer.gateway.openapi import drop_422
from worker.contract.settings import Settings, get_settings


async def _anyone() -> str:
    return ""


def create_app(
    settings: Settings | None = None,
    *,
    client: Client | None = None,
    offload: Offload | None = None,
    launcher: BatchLauncher | None = None,
    cache_reader: AsyncCacheReader | None = None,
) -> FastAPI:
    """The gateway application; `uvicorn --factory producer.gateway.app:create_app` serves it.

    Cache hits are read with redis.asyncio (`cache_reader`, built from the settings unless
    a `client` is given); everything else runs through `client` on threads (`offload`).
    """
    settings = settings or get_settings()
    if client is None:
        client = Client(settings)
        cache_reader = cache_reader or AsyncCacheReader.from_settings(settings)
    calls = ThreadPoolExecutor(settings.gateway_threads, thread_name_prefix="gateway")
    batch_calls = ThreadPoolExecutor(4, thread_name_prefix="gateway-batch")
    probes = ThreadPoolExecutor(2, thread_name_prefix="gateway-probe")
    keys = ApiKeys(settings.gateway_api_keys)
    context = Context(
        settings=settings,
        client=client,
        run=offload or thread_offload(calls),
        run_batch=offload or thread_offload(batch_calls),
        probe=thread_offload(probes),
        launcher=launcher or BatchLauncher(client, settings.gateway_max_batches),
        gate=QuestionGate(settings.gateway_threads, settings.gateway_max_waiting, client.timeout),
        reader=cache_reader,
        upload_dir=settings.gateway_upload_dir.resolve(),
        limit_bytes=settings.gateway_max_upload_mb * 1024 * 1024,
        keys=keys,
        caller=keys.dependency() if keys else _anyone,
        rate=BatchRateLimit(settings.gateway_batches_per_minute),
    )
    app = FastAPI(
        title="zipscore gateway",
        summary="Belgian zipcode risk factors, the health index and batch scoring over HTTP.",
        version="1",
        docs_url=None,  # served from this package's files, not from a CDN
        redoc_url=None,
    )
    app.add_middleware(HeadAsGet)
    install_error_handlers(app, (settings.gateway_upload_dir.absolute(), context.upload_dir))
    add_health_routes(app, context)
    add_lookup_routes(app, context)
    add_index_route(app, context)
    add_batch_routes(app, context)
    add_docs_pages(app)
    drop_422(app)
    return app
