"""The per-process copy of the risk table that lookups read (worker/lookups/current_table.py)."""

from __future__ import annotations

import psycopg
import pytest

from tests.support.fakes import SAMPLE_RULES, DictZipcodeStore
from worker.contract.result_cache import ResultCache
from worker.lookups import answers as lookups
from worker.lookups.current_table import RECHECK_SECONDS, CurrentTable
from worker.lookups.risk_table import Rule


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def table(store: DictZipcodeStore, clock: Clock) -> CurrentTable:
    return CurrentTable(store, clock)


def test_many_lookups_cost_one_copy_of_the_table(
    store: DictZipcodeStore, table: CurrentTable
) -> None:
    answers = [table.lookup(zipcode) for zipcode in (1000, 1315, 9170, 1501)]
    assert answers == [(1, "C"), (1, "B"), (1, "A"), (1, None)]
    assert store.queries == 1


def test_postgres_is_asked_for_its_version_at_most_once_a_recheck_interval(
    store: DictZipcodeStore, table: CurrentTable, clock: Clock
) -> None:
    table.lookup(9000)
    clock.now += RECHECK_SECONDS / 2
    table.lookup(9000)
    assert store.queries == 1  # the copy only
    clock.now += RECHECK_SECONDS / 2
    table.lookup(9000)
    table.lookup(9001)
    assert store.queries == 2  # the copy, then one version check for both lookups


def test_a_load_that_was_never_published_is_seen_at_the_next_check(
    store: DictZipcodeStore, table: CurrentTable, clock: Clock
) -> None:
    assert table.lookup(9000) == (1, "B")
    store.load([Rule(9000, 9000, "C")])
    assert table.lookup(9000) == (1, "B")  # within the interval: the copy stands
    clock.now += RECHECK_SECONDS
    assert table.lookup(9000) == (2, "C")


def test_a_newer_published_version_is_answered_at_once(
    store: DictZipcodeStore, table: CurrentTable, cache: ResultCache
) -> None:
    assert lookups.lookup(table, cache, 9000)["risk_factor"] == "B"
    store.load([Rule(9000, 9000, "C")])
    cache.publish_version(store.version)  # what a load does once it has committed
    answer = lookups.lookup(table, cache, 9000)  # same instant: no recheck due
    assert answer == {"zipcode": 9000, "risk_factor": "C", "exists": True}
    assert cache.get("lookup", 9000) == answer


def test_a_published_version_postgres_does_not_hold_costs_one_more_copy_only(
    store: DictZipcodeStore, table: CurrentTable, cache: ResultCache
) -> None:
    # Redis ahead of Postgres (a database restored from an older backup): the answer comes
    # from Postgres's table, copied once more, and the lookup does not loop.
    cache.publish_version(store.version + 5)
    answer = lookups.lookup(table, cache, 1315)
    assert answer["risk_factor"] == "B"
    assert store.queries == 2
    assert cache.get("lookup", 1315) is None  # cached under version 1, not the current 6
    for zipcode in (1000, 9000, 9170):  # regression: each of these copied the table again
        lookups.lookup(table, cache, zipcode)
    assert store.queries == 2


def test_an_empty_table_answers_unknown(clock: Clock) -> None:
    empty = DictZipcodeStore([])
    assert CurrentTable(empty, clock).lookup(9000) == (1, None)


class UnreachableStore(DictZipcodeStore):
    """A store whose database went away after the table was copied."""

    down = False

    def current_version(self) -> int:
        if self.down:
            raise psycopg.OperationalError("connection refused")
        return super().current_version()

    def snapshot(self) -> tuple[int, dict[int, str]]:
        if self.down:
            raise psycopg.OperationalError("connection refused")
        return super().snapshot()


def test_a_warm_copy_answers_through_a_database_outage(clock: Clock) -> None:
    store = UnreachableStore(list(SAMPLE_RULES))
    table = CurrentTable(store, clock)
    assert table.lookup(9000) == (1, "B")
    store.down = True
    clock.now += RECHECK_SECONDS
    assert table.lookup(9000) == (1, "B")  # the check failed: the copy stands
    assert table.lookup(1000) == (1, "C")
    store.down = False
    store.load([Rule(9000, 9000, "C")])
    clock.now += RECHECK_SECONDS
    assert table.lookup(9000) == (2, "C")  # back: the next check sees the load


def test_a_cold_copy_needs_the_database(clock: Clock) -> None:
    store = UnreachableStore(list(SAMPLE_RULES))
    store.down = True
    with pytest.raises(psycopg.OperationalError):
        CurrentTable(store, clock).lookup(9000)  # the task retries on this


class SlowUnreachableStore(UnreachableStore):
    """Its version check waits `wait` seconds on the clock before failing."""

    def __init__(self, clock: Clock, wait: float) -> None:
        super().__init__(list(SAMPLE_RULES))
        self.clock, self.wait, self.checks = clock, wait, 0

    def current_version(self) -> int:
        self.checks += 1
        self.clock.now += self.wait
        return super().current_version()


def test_a_check_that_waited_on_a_dead_database_is_not_repeated_by_the_next_lookup(
    clock: Clock,
) -> None:
    # Regression: the interval ran from the check's start, so with Postgres down every
    # lookup waited out the pool's timeout again.
    store = SlowUnreachableStore(clock, wait=5.0)
    table = CurrentTable(store, clock)
    table.lookup(9000)
    store.down = True
    clock.now += RECHECK_SECONDS
    for zipcode in (9000, 1000, 1315):
        assert table.lookup(zipcode)[0] == 1
    assert store.checks == 1
