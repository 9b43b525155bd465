"""The gateway's bound on questions that wait for a worker: how many, and for how long.

    gate = QuestionGate(running=32, waiting=32, timeout=10.0)
    answer = await gate.ask(lambda seconds: client.lookup(9000, timeout=seconds), run, arrived)

A cache miss holds a thread while its task is sent and awaited. At most `running` such
calls run at once (the thread pool's size), at most `waiting` more wait for one of them, and
anything past that is refused at once (`Saturated`: 503 with `Retry-After`) instead of
queueing behind calls that may all be waiting out a dead worker. Every question has one
deadline, `timeout` seconds from the request's arrival: the wait for a thread counts, the
call is given only what is left (its task expires then, so an orphan never runs later),
and the answer is TIMEOUT at the deadline even if the thread is still blocked.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from worker.errors import ErrorCode, ZipscoreError

T = TypeVar("T")


class Saturated(Exception):
    """Every thread is busy and the waiting line is full: refused without waiting."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class QuestionGate:
    """At most `running` blocking questions at once, `waiting` more queued, one deadline each."""

    def __init__(self, running: int, waiting: int, timeout: float) -> None:
        self.running = running
        self.waiting = waiting
        self.timeout = timeout
        self._slots = asyncio.Semaphore(running)
        self._queued = 0

    def timed_out(self) -> ZipscoreError:
        return ZipscoreError(
            ErrorCode.TIMEOUT, f"no answer from a worker within {self.timeout:g} s"
        )

    async def ask(
        self,
        question: Callable[[float], T],
        offload: Callable[[Callable[[], T]], Awaitable[T]],
        arrived: float,
    ) -> T:
        """`question(seconds_left)` run through `offload`, within `timeout` of `arrived`
        (a `time.monotonic()` reading).

        Raises:
            Saturated: at once, when `running` questions run and `waiting` more wait.
            ZipscoreError: TIMEOUT at the deadline (or the question's own error).
        """
        deadline = arrived + self.timeout
        if self._slots.locked() and self._queued >= self.waiting:
            raise Saturated(
                f"this gateway is answering {self.running + self.waiting} questions already;"
                " retry later",
                math.ceil(self.timeout),  # by then every question now held has been answered
            )
        self._queued += 1
        try:
            async with asyncio.timeout(deadline - time.monotonic()):
                await self._slots.acquire()
        except TimeoutError:
            raise self.timed_out() from None
        finally:
            self._queued -= 1

        def call() -> T:
            left = deadline - time.monotonic()
            if left <= 0:  # waited its whole time for a thread: nothing is sent
                raise self.timed_out()
            return question(left)

        task = asyncio.ensure_future(offload(call))
        # The slot is the thread's: given back when the call ends, not when the request does.
        task.add_done_callback(self._finished)
        try:
            async with asyncio.timeout(deadline - time.monotonic()):
                return await asyncio.shield(task)
        except TimeoutError:
            raise self.timed_out() from None

    def _finished(self, task: asyncio.Future[T]) -> None:
        self._slots.release()
        if not task.cancelled():
            task.exception()  # retrieved: a call answered after its deadline is not an error
