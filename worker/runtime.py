"""The per-process collaborators of tasks: stores, caches, pinned tables, the index source.

Created on first use in each worker process (after the fork). Unit tests swap them with
`use(...)` / `use_index(...)` to run tasks eagerly against memory and fakeredis;
integration tests point the embedded worker at a local fake Statbel with `use_index`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from worker.batch.scoring import ScoringTable
from worker.contract.batch_store import BatchStore, batch_store_from_settings
from worker.contract.index_cache import IndexCache, index_cache_from_settings
from worker.contract.result_cache import ResultCache, cache_from_settings
from worker.lookups.current_table import CurrentTable
from worker.lookups.zipcodes import PostgresZipcodeStore, ZipcodeStore

if TYPE_CHECKING:
    from worker.index.service import Source
    from worker.index.store import HealthIndexStore

# Pinned tables kept per process: a job's version and the one of the job before it.
MAX_TABLES = 2


@dataclass
class _Runtime:
    store: ZipcodeStore | None = None
    table: CurrentTable | None = None
    cache: ResultCache | None = None
    batch: BatchStore | None = None
    tables: dict[int, ScoringTable] = field(default_factory=dict)
    pid: int = 0
    index_pid: int = 0
    index_store: HealthIndexStore | None = None
    index_cache: IndexCache | None = None
    statbel: Source | None = None


_current = _Runtime()


def use(
    store: ZipcodeStore | None = None,
    cache: ResultCache | None = None,
    batch: BatchStore | None = None,
) -> None:
    """Install collaborators for this process (tests); None restores the defaults."""
    _current.store, _current.cache, _current.batch = store, cache, batch
    _current.table = None
    _current.tables = {}
    _current.pid = os.getpid()


def _fresh() -> _Runtime:
    if _current.pid != os.getpid():
        use()
    return _current


def store() -> ZipcodeStore:
    runtime = _fresh()
    if runtime.store is None:
        from worker.database.pool import get_pool

        runtime.store = PostgresZipcodeStore(get_pool())
    return runtime.store


def table() -> CurrentTable:
    """This process's copy of the risk table, for lookups."""
    runtime = _fresh()
    if runtime.table is None:
        runtime.table = CurrentTable(store())
    return runtime.table


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


def use_index(
    store: HealthIndexStore | None = None,
    cache: IndexCache | None = None,
    source: Source | None = None,
) -> None:
    """Install the health index collaborators for this process; None restores the defaults."""
    _current.index_store, _current.index_cache, _current.statbel = store, cache, source
    _current.index_pid = os.getpid()


def _fresh_index() -> _Runtime:
    if _current.index_pid != os.getpid():
        use_index()
    return _current


def index_store() -> HealthIndexStore:
    runtime = _fresh_index()
    if runtime.index_store is None:
        from worker.database.pool import get_pool
        from worker.index.store import PostgresHealthIndexStore

        runtime.index_store = PostgresHealthIndexStore(get_pool())
    return runtime.index_store


def index_cache() -> IndexCache:
    runtime = _fresh_index()
    if runtime.index_cache is None:
        runtime.index_cache = index_cache_from_settings()
    return runtime.index_cache


def statbel() -> Source:
    runtime = _fresh_index()
    if runtime.statbel is None:
        from worker.index.statbel import source_from_settings

        runtime.statbel = source_from_settings()
    return runtime.statbel
