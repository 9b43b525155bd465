"""The per-process collaborators of tasks: the zipcode store and the result cache.

Created on first use in each worker process (after the fork). Unit tests swap them with
`use(...)` to run tasks eagerly against a dict and fakeredis.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from worker.cache import ResultCache, cache_from_settings
from worker.zipcodes import PostgresZipcodeStore, ZipcodeStore


@dataclass
class _Runtime:
    store: ZipcodeStore | None = None
    cache: ResultCache | None = None
    pid: int = 0


_current = _Runtime()


def use(store: ZipcodeStore | None = None, cache: ResultCache | None = None) -> None:
    """Install collaborators for this process (tests); None restores the defaults."""
    _current.store, _current.cache, _current.pid = store, cache, os.getpid()


def _fresh() -> _Runtime:
    if _current.pid != os.getpid():
        use()
    return _current


def store() -> ZipcodeStore:
    runtime = _fresh()
    if runtime.store is None:
        from worker.db import get_pool

        runtime.store = PostgresZipcodeStore(get_pool())
    return runtime.store


def cache() -> ResultCache:
    runtime = _fresh()
    if runtime.cache is None:
        runtime.cache = cache_from_settings()
    return runtime.cache
