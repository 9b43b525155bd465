"""The per-process collaborators of tasks: zipcode store, result cache, batch store, tables.

Created on first use in each worker process (after the fork). Unit tests swap them with
`use(...)` to run tasks eagerly against a dict and fakeredis.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from worker.batch import ScoringTable
from worker.batch_store import BatchStore, batch_store_from_settings
from worker.cache import ResultCache, cache_from_settings
from worker.zipcodes import PostgresZipcodeStore, ZipcodeStore

# Pinned tables kept per process: a job's version and the one of the job before it.
MAX_TABLES = 2


@dataclass
class _Runtime:
    store: ZipcodeStore | None = None
    cache: ResultCache | None = None
    batch: BatchStore | None = None
    tables: dict[int, ScoringTable] = field(default_factory=dict)
    pid: int = 0


_current = _Runtime()


def use(
    store: ZipcodeStore | None = None,
    cache: ResultCache | None = None,
    batch: BatchStore | None = None,
) -> None:
    """Install collaborators for this process (tests); None restores the defaults."""
    _current.store, _current.cache, _current.batch = store, cache, batch
    _current.tables = {}
    _current.pid = os.getpid()


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


def batch_store() -> BatchStore:
    runtime = _fresh()
    if runtime.batch is None:
        runtime.batch = batch_store_from_settings()
    return runtime.batch


def scoring_table(version: int) -> ScoringTable | None:
    """Table `version` as pinned in Redis, built once per process; None when it is gone."""
    runtime = _fresh()
    table = runtime.tables.get(version)
    if table is None:
        factors = batch_store().get_table(version)
        if factors is None:
            return None
        table = ScoringTable.from_pairs(version, factors)
        while len(runtime.tables) >= MAX_TABLES:
            runtime.tables.pop(min(runtime.tables))
        runtime.tables[version] = table
    return table
