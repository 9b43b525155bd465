"""Hostile files at the entry points a user drives: `zipscore db load-zipcodes FILE` and the
health index refresh fed by Statbel (batch inputs: tests/unit/batch/test_hostile_inputs.py).

For any bytes: a result or a contract error (one line on stderr, exit status 2 for a refused
file), never an exception, a traceback or a hang; a refused file changes nothing. The pure
parsers have their own properties (test_risk_table.py, test_health_index_document.py); these
go through the CLI and the eager tasks, with the dict store, fakeredis and a respx-mocked
Statbel (the Postgres load in tests/integration/test_hostile_table_files.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from click.testing import CliRunner
from hypothesis import event, example, given
from hypothesis import strategies as st

from producer.cli import main as cli
from producer.client import Client
from tests.support.batch_jobs import Sent
from tests.support.cli_results import assert_no_crash, assert_one_line_error
from tests.support.fakes import STATBEL_TEST_URL, DictZipcodeStore, MemoryHealthIndexStore
from tests.support.hostile import BOM, FUZZ, JUNK, corrupt, invoke
from tests.support.statbel_documents import fixture_body
from worker import runtime
from worker.contract.errors import ErrorCode
from worker.contract.index_cache import IndexCache
from worker.contract.result_cache import ResultCache
from worker.index.document import DocumentRefused, parse_document
from worker.index.statbel import StatbelSource
from worker.lookups.risk_table import RiskTableError, Rule, expand, parse_text

SUPPORTED = (1996, 2004, 2013, 2025)


# -- 1. risk-table files: `zipscore db load-zipcodes FILE` ----------------------------------


class _NoConnection:
    """Stands in for the Postgres connection: the dict store does the loading."""

    def __enter__(self) -> _NoConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.fixture
def table_db(
    store: DictZipcodeStore, cache: ResultCache, monkeypatch: pytest.MonkeyPatch
) -> DictZipcodeStore:
    """`zipscore db load-zipcodes` over the dict store (its Postgres step) and fakeredis."""
    from worker.database import admin
    from worker.database import pool as db
    from worker.lookups import zipcodes

    def load_rules(conn: object, rules: Iterable[Rule]) -> int:
        store.load(list(rules))
        return store.version

    monkeypatch.setattr(db, "connect", lambda *args, **kwargs: _NoConnection())
    monkeypatch.setattr(zipcodes, "load_rules", load_rules)
    monkeypatch.setattr(zipcodes, "table_size", lambda conn: len(store.table))
    monkeypatch.setattr(zipcodes, "table_version", lambda conn: store.version)
    monkeypatch.setattr(admin, "cache_from_settings", lambda settings=None: cache)
    cache.publish_version(store.version)
    return store


def table_state(store: DictZipcodeStore, cache: ResultCache) -> tuple[int, dict[int, str], Any]:
    return store.version, dict(store.table), cache.table_version()


PAD = st.sampled_from(["", " ", "\t"])


@st.composite
def rule_tables(draw: st.DrawFn) -> tuple[list[Rule], list[str]]:
    """Valid non-overlapping rules, and their lines in any order with varied spacing."""
    cuts = sorted(draw(st.sets(st.integers(1000, 9999), min_size=1, max_size=8)))
    rules = []
    for index, first in enumerate(cuts):
        limit = cuts[index + 1] - 1 if index + 1 < len(cuts) else 9999
        rules.append(Rule(first, draw(st.integers(first, limit)), draw(st.sampled_from("ABC"))))
    lines = [
        f"{draw(PAD)}{r.first}{draw(PAD)}-{draw(PAD)}{r.last}{draw(PAD)},{draw(PAD)}{r.risk_factor}"
        if r.first != r.last or draw(st.booleans())
        else f"{r.first}{draw(PAD)},{draw(PAD)}{r.risk_factor}{draw(PAD)}"
        for r in draw(st.permutations(rules))
    ]
    for _ in range(draw(st.integers(0, 2))):
        lines.insert(draw(st.integers(0, len(lines))), draw(PAD))
    return rules, lines


NEAR_VALID_LINE = st.sampled_from(
    [
        "999,A", "10000,B", "1000 - 10000,C", "1310 - 1000,C", "1000,D", "1000,c", "1000,AB",
        "1000", "1000,C,extra", ",A", "1000-,A", "abc,C", "1000;C", "1 000,A", "+1000,A",
        "\ufeff1000,A", "1000,A\x00", "\x001000,A", "1000.5,A", "0x3e8,A", "١٠٠٠,A",
        "1000 – 1010,A", "9" * 5000 + ",A", "1000 - " + "9" * 4400 + ",B", "0" * 4400 + "1000,A",
        "1000\u00a0-\u00a01010,B", "1000,A\u2028", "1000,C", "5000 - 5100,B", "", "   ",
    ]
)  # fmt: skip


LINE_ENDINGS = st.sampled_from(["\n", "\r\n", "\r", "\x0b", "\x0c", "\x85", "\u2028"])


@st.composite
def table_files(draw: st.DrawFn) -> bytes:
    """Bytes near a risk table: a valid table with odd line endings, perhaps a BOM, and
    perhaps near-valid lines (huge numbers, NUL, other digits, overlaps...) or junk bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=200))
    _, lines = draw(rule_tables())
    for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):
        lines.insert(draw(st.integers(0, len(lines))), draw(NEAR_VALID_LINE))
    parts = [line + draw(LINE_ENDINGS) for line in lines]
    text = (BOM if draw(st.booleans()) else "") + "".join(parts)
    data = text.encode("utf-8")
    if draw(st.integers(0, 5)) == 0:
        data = corrupt(data, draw(JUNK), draw(st.integers(0, 10_000)))
    return data


def expected_rules(content: bytes) -> list[Rule] | None:
    """The rules the project's own parser reads in `content`, or None if it refuses them."""
    try:
        return parse_text(content.decode("utf-8"))
    except (UnicodeDecodeError, RiskTableError):
        return None


@FUZZ
@given(content=table_files(), as_json=st.booleans())
@example(content=b"9" * 5000 + b",A\n", as_json=False)  # was a ValueError from int()
@example(content=b"1000 - " + b"9" * 4400 + b",B\n", as_json=True)
@example(content=b"\xef\xbb\xbf1000 - 1002,C\r\n\r\n1315,B\r", as_json=False)
@example(content=b"1000,C\n\xff1001,B\n", as_json=True)
def test_any_risk_table_file_is_loaded_or_refused_with_one_line(
    runner: CliRunner,
    table_db: DictZipcodeStore,
    cache: ResultCache,
    tmp_path: Path,
    content: bytes,
    as_json: bool,
) -> None:
    path = tmp_path / "table.csv"
    path.write_bytes(content)
    before = table_state(table_db, cache)
    result = invoke(runner, "db", "load-zipcodes", str(path), *(["--json"] if as_json else []))
    assert_no_crash(result)
    rules = expected_rules(content)
    event("refused" if rules is None else "loaded")
    if rules is None:
        assert result.exit_code == 2, result.output
        assert_one_line_error(result, ErrorCode.BAD_INPUT_FILE, as_json)
        assert table_state(table_db, cache) == before
    else:
        assert result.exit_code == 0, result.output
        assert table_db.table == dict(expand(rules))
        assert table_db.version == before[0] + 1 == cache.table_version()


@st.composite
def poisoned_tables(draw: st.DrawFn) -> tuple[list[Rule], list[str], int | None]:
    """A valid table written out with varied spacing and blank lines, and maybe one bad line.

    Returns the rules, the lines, and the 1-based number of the bad line (None: all good).
    """
    rules, lines = draw(rule_tables())
    if not draw(st.booleans()):
        return rules, lines, None
    victim = draw(st.sampled_from(rules))
    poison = draw(
        st.sampled_from(
            [
                f"{victim.first},{'ABC'.replace(victim.risk_factor, '')[0]}",  # overlap
                f"{victim.last} - 9999,A",  # overlap at the victim's end
                "999,A", "10000,B", "9" * 4400 + ",A", "1000 - " + "9" * 5000 + ",C",
                "2000 - 1999,A", "1000,a", "1000,D", "1000,A,B", "1000 A", "١٠٠٠,A",
                "1000,A\x00", "\ufeff1000,A",
            ]
        )
    )  # fmt: skip
    at = draw(st.integers(0 if not poison.startswith(BOM) else 1, len(lines)))
    lines.insert(at, poison)
    return rules, lines, at + 1


@FUZZ
@given(table=poisoned_tables(), newline=st.sampled_from(["\n", "\r\n"]), bom=st.booleans())
# Arabic-Indic digits were read as zipcode 1000
@example(table=([Rule(1001, 1001, "A")], ["1001,A", "١٠٠٠,B"], 2), newline="\n", bom=False)
def test_a_table_loads_exactly_or_is_refused_naming_the_bad_line(
    runner: CliRunner,
    table_db: DictZipcodeStore,
    cache: ResultCache,
    tmp_path: Path,
    table: tuple[list[Rule], list[str], int | None],
    newline: str,
    bom: bool,
) -> None:
    rules, lines, bad_line = table
    path = tmp_path / "table.csv"
    path.write_bytes(((BOM if bom else "") + newline.join(lines) + newline).encode("utf-8"))
    before = table_state(table_db, cache)
    result = invoke(runner, "db", "load-zipcodes", str(path), "--json")
    assert_no_crash(result)
    if bad_line is None:
        assert result.exit_code == 0, result.output
        covered = sum(rule.last - rule.first + 1 for rule in rules)
        assert json.loads(result.stdout) == {
            "loaded": True,
            "version": before[0] + 1,
            "rules": len(rules),
            "zipcodes": covered,
        }
        assert table_db.table == dict(expand(rules))
    else:
        assert result.exit_code == 2, result.output
        assert_one_line_error(result, ErrorCode.BAD_INPUT_FILE, as_json=True)
        assert f"line {bad_line}:" in result.stderr
        assert table_state(table_db, cache) == before


# -- 2. Statbel documents: the index refresh ------------------------------------------------


class Statbel:
    """Statbel mocked by a respx router, answering 200 with whatever `body` is now.

    The source gets the router as its transport: the same mock as `respx.mock`, without
    httpx building an SSL context for each refresh (30 ms each, most of an example's time).
    """

    def __init__(self) -> None:
        self.body = fixture_body()
        self.router = respx.MockRouter(assert_all_called=False)
        self.route = self.router.get(STATBEL_TEST_URL).mock(
            side_effect=lambda request: httpx.Response(200, content=self.body)
        )

    def source(self) -> StatbelSource:
        transport = httpx.MockTransport(self.router.handler)
        return StatbelSource(
            STATBEL_TEST_URL, timeout=2.0, max_bytes=5_000_000, transport=transport
        )


@pytest.fixture
def statbel(
    index_eager: Sent, index_store: MemoryHealthIndexStore, index_cache: IndexCache
) -> Statbel:
    """Index tasks run eagerly against the mocked Statbel (`index_eager` restores the rest)."""
    mock = Statbel()
    runtime.use_index(store=index_store, cache=index_cache, source=mock.source())
    return mock


@pytest.fixture
def index_runner(
    statbel: Statbel, cache: ResultCache, index_cache: IndexCache, monkeypatch: pytest.MonkeyPatch
) -> CliRunner:
    """`zipscore index refresh` in-process, after one good refresh of the fixture document."""
    client = Client(cache=cache, index_cache=index_cache, timeout=1.0)
    client.refresh_index()
    monkeypatch.setattr(cli, "make_client", lambda: client)
    return CliRunner()


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=10,
)


MONTH_NAMES = st.sampled_from(["January", "may", "SEPTEMBER", "December"])


ODD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "Base year": st.sampled_from(["1988 = 100", "2004 = 200", "2004", "٢٠٠٤ = 100", "x"]),
    "Health index": st.sampled_from([0, -5, 10_000.5, 1e-7, 1e308, True, "135.61", None]),
    "Month": st.sampled_from(["Mai 2020", "March", "December 1899", "May 2021 2022", ""]),
    "Year": st.sampled_from(["٢٠٢١", "99999999999", "1899", 2021.0, "twenty", False]),
}


@st.composite
def facts(draw: st.DrawFn) -> Any:
    """A plausible fact (a supported base year or not, Year or not), sometimes with one
    field missing, odd or of the wrong type."""
    year = draw(st.integers(1990, 2030))
    fact: dict[str, Any] = {
        "Base year": draw(
            st.sampled_from(["2004 = 100", "1996 = 100", " 2025 = 100 ", "2013= 100"])
        ),
        "Health index": draw(st.decimals(50, 300, places=2).map(float)),
        "Month": f"{draw(MONTH_NAMES)} {year}",
    }
    if draw(st.booleans()):
        fact["Year"] = draw(st.sampled_from([str(year), year, f" {year} "]))
        if draw(st.booleans()):
            fact["Month"] = fact["Month"].split()[0]
    if draw(st.integers(0, 4)) == 0:
        key = draw(st.sampled_from(sorted(ODD_VALUES)))
        choice = draw(st.integers(0, 3))
        if choice == 0:
            fact.pop(key, None)
        else:
            fact[key] = draw(ODD_VALUES[key] if choice < 3 else JSON_VALUES)
    return fact if draw(st.integers(0, 19)) else draw(JSON_VALUES)


@st.composite
def statbel_bodies(draw: st.DrawFn) -> bytes:
    """What Statbel might answer: near-valid documents, any JSON value, or any bytes."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.binary(max_size=100))
    if kind == 1:
        return json.dumps(draw(JSON_VALUES)).encode()
    document: Any = {"facts": draw(st.lists(facts(), min_size=1, max_size=5))}
    if draw(st.integers(0, 5)) == 0:
        document["extra"] = draw(JSON_VALUES)
    data = json.dumps(document, allow_nan=True).encode()
    if draw(st.integers(0, 7)) == 0:
        data = corrupt(data, draw(JUNK | st.just(b"9" * 5000)), draw(st.integers(0, 10_000)))
    return data


Rows = dict[tuple[int, date], tuple[Decimal, datetime]]


def index_state(
    store: MemoryHealthIndexStore, index_cache: IndexCache
) -> tuple[Rows, dict[int, dict[str, Any] | None]]:
    """The stored history and every base year's cached latest answer."""
    return dict(store.rows), {year: index_cache.get(year) for year in SUPPORTED}


def expected_months(body: bytes) -> dict[tuple[int, date], Decimal] | None:
    """The months the project's own parser reads in `body`, or None if it refuses it."""
    try:
        months = parse_document(body, SUPPORTED)
    except DocumentRefused:
        return None
    return {(month.base_year, month.period): month.value for month in months}


@FUZZ
@given(body=statbel_bodies(), as_json=st.booleans())
@example(body=b'{"facts": [{"Base year": "2004 = 100", "Health index": 1e999}]}', as_json=True)
@example(body=b'{"facts": [null, {"Base year": "2004 = 100", "Health index": ' + b"9" * 5000
         + b', "Month": "May 2021"}]}', as_json=False)  # fmt: skip
@example(body=b"\xef\xbb\xbf" + fixture_body(), as_json=False)
@example(body=b'{"facts": [{"Health index": 1e-0' + b"9" * 5000 + b"}]}", as_json=True)  # crashed
def test_any_statbel_answer_is_stored_or_refused_keeping_the_last_good_values(
    index_runner: CliRunner,
    statbel: Statbel,
    index_store: MemoryHealthIndexStore,
    index_cache: IndexCache,
    body: bytes,
    as_json: bool,
) -> None:
    before = index_state(index_store, index_cache)
    fetches = statbel.route.call_count
    statbel.body = body
    result = invoke(index_runner, "index", "refresh", *(["--json"] if as_json else []))
    assert_no_crash(result)
    assert statbel.route.call_count == fetches + 1  # one fetch: a refused document is not retried
    months = expected_months(body)
    event("refused" if months is None else "stored")
    if months is None:
        assert result.exit_code == 1, result.output  # INDEX_UNAVAILABLE: not the caller's input
        assert_one_line_error(result, ErrorCode.INDEX_UNAVAILABLE, as_json)
        # the document's own refusal, not some crash of the task reported as a failure
        assert "INDEX_UNAVAILABLE: the document was refused: " in result.stderr, result.stderr
        assert index_state(index_store, index_cache) == before
        return
    assert result.exit_code == 0, result.output
    for key, value in months.items():
        assert index_store.rows[key][0] == value
    assert {key: row for key, row in before[0].items() if key not in months} == {
        key: row for key, row in index_store.rows.items() if key not in months
    }
    for base_year in {base_year for base_year, _ in months}:
        latest = max(period for (year, period) in index_store.rows if year == base_year)
        cached = index_cache.get(base_year)
        assert cached is not None
        assert cached["period"] == f"{latest:%Y-%m}"
        assert cached["index"] == float(index_store.rows[(base_year, latest)][0])
