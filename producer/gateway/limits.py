"""The gateway's bounds: questions that wait for a worker (how many, for how long), and
batches started with one API key (how often).

    gate = QuestionGate(running=32, waiting=32, timeout=10.0)
    answer = await gate.ask(lambda seconds: client.lookup(9000, timeout=seconds), run, arrived)

A cache miss holds a thread while its task is sent and awaited. At most `running` such
calls run at once (the thread pool's size), at most `waiting` more wait for one of them, and
anything past that is refused at once (`Saturated`: 503 with `Retry-After`) instead of
queueing behind calls that may all be waiting out a dead worker. Every question has one
deadline, `timeout` seconds from the request's arrival: the wait for a thread counts, the
call is given only what is left (its task expires then, so an orphan never runs later),
and the answer is TIMEOUT at the deadline even if the thread is still blocked.

    limit = BatchRateLimit(per_minute=10)
    limit.take(key_id)   # or Refusal: 429 RATE_LIMITED with Retry-After

Each key has a token bucket of `per_minute` batches, refilled continuously: a burst of
`per_minute` is allowed, then one every 60/`per_minute` seconds. The buckets live in this
process (each gateway counts its own), as the batch slots they guard do.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

from worker.contract.errors import ErrorCode, ZipscoreError

T = TypeVar("T")


class Refusal(ZipscoreError):
    """A contract error whose HTTP answer carries headers (`Retry-After`, `WWW-Authenticate`)."""

    def __init__(self, code: ErrorCode, message: str, headers: Mapping[str, str]) -> None:
        super().__init__(code, message)
        self.headers = dict(headers)


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


class BatchRateLimit:
    """At most `per_minute` batches a minute per key (a token bucket each), in this process.

    Called on the event loop only, so the buckets need no lock.
    """

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key id: (tokens, when counted)

    def take(self, key_id: str) -> None:
        """Take one batch from `key_id`'s bucket.

        Raises:
            Refusal: RATE_LIMITED (429), with the seconds until a batch is there again.
        """
        now = self._clock()
        tokens, counted = self._buckets.get(key_id, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - counted) * self.per_minute / 60)
        if tokens < 1:
            self._buckets[key_id] = (tokens, now)
            wait = math.ceil(round((1 - tokens) * 60 / self.per_minute, 6))  # float dust
            raise Refusal(
                ErrorCode.RATE_LIMITED,
                f"this API key is over its {self.per_minute} batches a minute; retry in {wait} s",
                {"Retry-After": str(wait)},
            )
        self._buckets[key_id] = (tokens - 1, now)
