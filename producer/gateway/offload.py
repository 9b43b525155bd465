"""Running the client's blocking calls off the event loop.

    run = thread_offload(ThreadPoolExecutor(8))
    answer = await run(functools.partial(client.batch_status, job_id))

Every client call that may block (Redis, a worker) goes through an `Offload`: the loop stays
free while the call waits, so a slow lookup delays its own request only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Protocol, TypeVar

T = TypeVar("T")


class Offload(Protocol):
    """Runs a blocking call off the event loop and awaits it. The benchmark swaps in a
    blocking variant (the call made inline, on the loop) to show the difference."""

    def __call__(self, call: Callable[[], T], /) -> Awaitable[T]: ...


def thread_offload(executor: Executor) -> Offload:
    """Run each call on `executor` and await it: the loop stays free while it blocks."""

    async def offload(call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(executor, call)

    return offload
