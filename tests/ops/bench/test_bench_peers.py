"""The batch bench's peers (ops/bench/peers.py) score what zipscore scores.

A side-by-side table is only worth reading if every design does the same job: each peer,
run as the bench runs it, must keep every row in input order and give each row the factor
of the risk table (or `unknown`), quoted names and bad zipcodes included.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from ops.bench.inputs import expanded_table, generate_portfolio
from tests.support.paths import ROOT
from worker.lookups.risk_table import expand, parse_text

SAMPLE_TABLE = ROOT / "ops" / "sample_data" / "risk-table.sample.csv"
ROWS = 3_000


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    workdir = tmp_path_factory.mktemp("peers")
    return expanded_table(workdir / "table.csv"), generate_portfolio(workdir / "in.csv", ROWS)


def test_the_portfolio_has_quoted_names_and_bad_zipcodes(files: tuple[Path, Path]) -> None:
    _, source = files
    with source.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == ROWS
    assert any("," in row["name"] for row in rows)
    assert any('"' in row["name"] for row in rows)
    assert any(not row["zipcode"].isdigit() or len(row["zipcode"]) != 4 for row in rows)


@pytest.mark.parametrize("design", ["csv", "duckdb", "polars"])
def test_each_peer_scores_every_row_in_order(
    design: str, files: tuple[Path, Path], tmp_path: Path
) -> None:
    table, source = files
    target = tmp_path / "out.csv"
    paths = (table, source, target)
    done = subprocess.run(
        [sys.executable, str(ROOT / "ops" / "bench" / "peers.py"), design, *map(str, paths)],
        capture_output=True,
        text=True,
        check=True,
    )
    factors = {
        str(zipcode): factor for zipcode, factor in expand(parse_text(SAMPLE_TABLE.read_text()))
    }
    with source.open(newline="") as f:
        expected = [
            (row["customer_id"], row["name"], factors.get(row["zipcode"], ""))
            for row in csv.DictReader(f)
        ]
    with target.open(newline="") as f:
        scored = [
            (row["customer_id"], row["name"], row["risk_factor"] or "", row["status"])
            for row in csv.DictReader(f)
        ]
    assert f'"rows": {ROWS}' in done.stdout
    assert [row[:3] for row in scored] == expected
    assert all(row[3] == ("ok" if row[2] else "unknown") for row in scored)
