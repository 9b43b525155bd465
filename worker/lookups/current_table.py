"""This worker process's copy of the risk table, kept at the version Redis publishes.

A lookup reads a dict instead of querying Postgres: the copy (`ZipcodeStore.snapshot`, at
most 9,000 pairs) is taken on first use and again

- as soon as a cache write shows that Redis publishes a newer version (a load publishes
  its version once it has committed: see `worker.lookups.answers.lookup`), and
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

from worker.lookups.zipcodes import UNREACHABLE, ZipcodeStore

RECHECK_SECONDS = 1.0


class CurrentTable:
    """The risk table at one version, read from `store`, checked against it every second."""

    def __init__(self, store: ZipcodeStore, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._clock = clock
        # Version and rows in one tuple, replaced whole: a reader in another thread never
        # pairs one copy's version with another copy's rows.
        self._copy: tuple[int, dict[int, str]] | None = None
        self._checked = 0.0
        self._caught_up_to = 0  # the last published version `catch_up` copied for

    def lookup(self, zipcode: int) -> tuple[int, str | None]:
        """The table's version and `zipcode`'s factor (None when no rule covers it)."""
        copy = self._copy
        now = self._clock()
        if copy is None:
            copy = self.reload()
        elif now - self._checked >= RECHECK_SECONDS:
            try:
                current = self._store.current_version()
            except UNREACHABLE:
                current = copy[0]
            finally:
                # From the check's end: a check that waited on an unreachable Postgres is
                # not repeated by the very next lookup.
                self._checked = self._clock()
            if current != copy[0]:
                copy = self.reload()
        version, factors = copy
        return version, factors.get(zipcode)

    def catch_up(self, published: int) -> bool:
        """Copy the table again for a version Redis publishes and the copy is behind;
        True when it did. Once per published version: when Postgres itself is behind
        Redis (a database restored from an older backup), lookups do not copy the whole
        table each time."""
        copy = self._copy
        if copy is not None and published <= copy[0]:
            return False
        if published <= self._caught_up_to:
            return False
        self._caught_up_to = published
        self.reload()
        return True

    def reload(self) -> tuple[int, dict[int, str]]:
        """Take a fresh copy of the table and its version, read together; return it."""
        self._copy = copy = self._store.snapshot()
        self._checked = self._clock()
        return copy
