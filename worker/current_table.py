"""This worker process's copy of the risk table, kept at the version Redis publishes.

A lookup reads a dict instead of querying Postgres: the copy (`ZipcodeStore.snapshot`, at
most 9,000 pairs) is taken on first use and again

- as soon as a cache write shows that Redis publishes a newer version (a load publishes
  its version once it has committed: see `worker.lookups.lookup`), and
- when Postgres holds another version at a check made at most every RECHECK_SECONDS,
  which covers a load whose publish failed and a Redis that was flushed.

When that check cannot reach Postgres, the copy stays in use (a load needs Postgres too,
and a newer version published in Redis still forces a copy, which then fails and the task
retries): a warm worker answers lookups through a database outage. A cold one, with no
copy yet, retries until Postgres is back.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from worker.zipcodes import UNREACHABLE, ZipcodeStore

RECHECK_SECONDS = 1.0


class CurrentTable:
    """The risk table at one version, read from `store`, checked against it every second."""

    def __init__(self, store: ZipcodeStore, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._clock = clock
        self._version: int | None = None
        self._factors: dict[int, str] = {}
        self._checked = 0.0

    def lookup(self, zipcode: int) -> tuple[int, str | None]:
        """The table's version and `zipcode`'s factor (None when no rule covers it)."""
        now = self._clock()
        if self._version is None:
            self.reload()
        elif now - self._checked >= RECHECK_SECONDS:
            self._checked = now
            try:
                current = self._store.current_version()
            except UNREACHABLE:
                current = self._version
            if current != self._version:
                self.reload()
        assert self._version is not None
        return self._version, self._factors.get(zipcode)

    def reload(self) -> None:
        """Take a fresh copy of the table and its version, read together."""
        self._version, self._factors = self._store.snapshot()
        self._checked = self._clock()
