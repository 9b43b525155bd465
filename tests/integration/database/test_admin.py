"""Hostile risk-table files against the real Postgres load (`zipscore db load-zipcodes`).

The unit tier fuzzes the command over the dict store (tests/unit/database/test_admin.py);
here a handful of generated bad files go through the real load: each is refused with one
line, and the table's rows, its version in `risk_table_meta` and the version published to
Redis are exactly as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from producer.cli import main as cli
from tests.support.cli_results import assert_no_crash, assert_one_line_error
from worker.contract.errors import ErrorCode
from worker.contract.result_cache import ResultCache

BAD_LINES = st.sampled_from(
    [
        "999,A", "1000 - 10000,C", "2000 - 1999,A", "1000,D", "1000,a", "1000,A,B", "1000 A",
        "9" * 5000 + ",A", "1000 - " + "9" * 4400 + ",C", "١٠٠٠,A", "1000,A\x00", "1500,A\n1500,B",
    ]
)  # fmt: skip
GOOD_LINES = st.sampled_from(["1000 - 1005,C", " 1010 ,B", "2000-2100 , A", "", "9999,C"])


@st.composite
def bad_table_files(draw: st.DrawFn) -> bytes:
    """Good lines with at least one bad one among them (or a byte that is not UTF-8)."""
    lines = draw(st.lists(GOOD_LINES, max_size=5, unique=True))
    for _ in range(draw(st.integers(1, 2))):
        lines.insert(draw(st.integers(0, len(lines))), draw(BAD_LINES))
    data = draw(st.sampled_from(["\n", "\r\n"])).join(lines).encode("utf-8")
    if draw(st.integers(0, 4)) == 0:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + b"\xff" + data[at:]
    return data


def table_state(conn: psycopg.Connection, cache: ResultCache) -> tuple[Any, ...]:
    """Every row of the table, the meta row (version, size, load time), the Redis version."""
    rows = conn.execute("SELECT zipcode, risk_factor FROM zipcodes ORDER BY zipcode").fetchall()
    meta = conn.execute("SELECT version, rows, loaded_at FROM risk_table_meta").fetchall()
    return rows, meta, cache.table_version()


@pytest.fixture
def runner(restore_table: None) -> CliRunner:
    """The CLI in-process against this run's database (the sample table is back afterwards,
    should a bad file ever be loaded)."""
    return CliRunner()


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(content=bad_table_files())
@example(content=b"1000 - 1005,C\n" + b"9" * 5000 + b",A\n")  # int() refused it: a ValueError
def test_a_refused_file_leaves_the_table_and_its_version_as_they_were(
    runner: CliRunner,
    conn: psycopg.Connection,
    real_cache: ResultCache,
    tmp_path: Path,
    content: bytes,
) -> None:
    path = tmp_path / "table.csv"
    path.write_bytes(content)
    before = table_state(conn, real_cache)
    result = runner.invoke(cli.cli, ["db", "load-zipcodes", str(path), "--json"])
    assert_no_crash(result)
    assert result.exit_code == 2, result.output
    assert_one_line_error(result, ErrorCode.BAD_INPUT_FILE, as_json=True)
    assert table_state(conn, real_cache) == before
