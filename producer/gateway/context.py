"""What the gateway's routes share: the client, how blocking calls run, batches, limits.

context = Context(settings=..., client=..., run=thread_offload(calls), ...)
@app.get("/zipcodes/{zipcode}", dependencies=context.guarded)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from fastapi import Depends
from fastapi.params import Depends as Dependency

from producer.client import Client
from producer.gateway.auth import ApiKeys
from producer.gateway.cache import AsyncCacheReader
from producer.gateway.errors import no_repeated_parameters
from producer.gateway.jobs import BatchLauncher
from producer.gateway.limits import BatchRateLimit, QuestionGate
from producer.gateway.offload import Offload
from worker.contract.settings import Settings


@dataclass(frozen=True)
class Context:
    """The routes' shared parts. `run` carries questions, `run_batch` batch calls and
    `probe` readiness checks, each on threads of its own; `reader` reads cache hits on the
    loop (None: the client reads the cache itself, on a thread)."""

    settings: Settings
    client: Client
    run: Offload
    run_batch: Offload
    probe: Offload
    launcher: BatchLauncher
    gate: QuestionGate
    reader: AsyncCacheReader | None
    upload_dir: Path
    limit_bytes: int
    keys: ApiKeys
    caller: Callable[..., Awaitable[str]]  # the caller's key id ("" when keys are off)
    rate: BatchRateLimit

    @property
    def guarded(self) -> list[Dependency]:
        """A route behind the API keys: the key checked first, then the query."""
        return [Depends(self.caller), Depends(no_repeated_parameters)]

    @property
    def open(self) -> list[Dependency]:
        """A route anyone may call (liveness, readiness)."""
        return [Depends(no_repeated_parameters)]

    @property
    def auth_errors(self) -> tuple[int, ...]:
        """401 where a key is needed, documented only when keys are configured."""
        return (401,) if self.keys else ()
