"""In-memory stand-ins for zipscore's Postgres stores, and the unit tier's sample data."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal

from worker.index.document import IndexMonth
from worker.index.store import Latest, StoreReport
from worker.lookups.risk_table import Rule, expand

# The Statbel address the unit tier's index tasks use, to be mocked with respx.
STATBEL_TEST_URL = "https://statbel.test/bestat/api/views/health-index/result/JSON"


class DictZipcodeStore:
    """The risk table in memory, with a version bumped by `load` like the real table."""

    def __init__(self, rules: list[Rule]) -> None:
        self.version = 0
        self.table: dict[int, str] = {}
        self.queries = 0
        self.load(rules)

    def load(self, rules: list[Rule]) -> None:
        self.table = dict(expand(rules))
        self.version += 1

    def current_version(self) -> int:
        self.queries += 1
        return self.version

    def by_risk_factor(self, risk_factor: str) -> tuple[int, list[int]]:
        self.queries += 1
        return self.version, sorted(z for z, f in self.table.items() if f == risk_factor)

    def snapshot(self) -> tuple[int, dict[int, str]]:
        self.queries += 1
        return self.version, dict(self.table)


SAMPLE_RULES = [
    Rule(1000, 1310, "C"),
    Rule(1315, 1315, "B"),
    Rule(9000, 9169, "B"),
    Rule(9170, 9240, "A"),
]


class MemoryHealthIndexStore:
    """The health index history in memory, with the Postgres store's upsert semantics."""

    def __init__(self) -> None:
        self.rows: dict[tuple[int, date], tuple[Decimal, datetime]] = {}
        self.refreshes: list[tuple[datetime, tuple[int, ...]]] = []
        self.now = datetime.now(UTC)

    def is_empty(self) -> bool:
        return not self.rows

    def store(self, months: Sequence[IndexMonth]) -> StoreReport:
        new = changed = 0
        for month in months:
            key = (month.base_year, month.period)
            if key not in self.rows:
                new += 1
            elif self.rows[key][0] != month.value:
                changed += 1
            else:
                continue
            self.rows[key] = (month.value, self.now)
        base_years = tuple(sorted({m.base_year for m in months}))
        self.refreshes.append((self.now, base_years))
        return StoreReport(base_years, len(months), new, changed, self.now)

    def latest(self, base_year: int) -> Latest | None:
        periods = [period for (year, period) in self.rows if year == base_year]
        if not periods:
            return None
        value, fetched_at = self.rows[(base_year, max(periods))]
        confirmed = [at for at, years in self.refreshes if base_year in years]
        return Latest(base_year, max(periods), value, max(confirmed, default=fetched_at))

    def remove(self, base_year: int, period: date) -> Decimal | None:
        found = self.rows.pop((base_year, period), None)
        return None if found is None else found[0]
