"""Batch input files for tests (portfolios), and the checks of their scored outputs.

    source = portfolio(tmp_path / "in.csv", 40)                      # the unit tier's table
    source = portfolio(path, 1_200, zipcodes=REAL_ZIPCODES, note=quoted_note, newline="\r\n")
    check_scored(tmp_path / "out.csv", 1_200)                        # against the sample table

Every portfolio has the columns `policy,zipcode,note`: row i has the policy `P<i>`, the zipcode
`zipcodes[i % len(zipcodes)]` and the note `note(i)`. Notes with quotes and line breaks are
quoted as CSV, so a row may span lines.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.support.paths import SAMPLE_TABLE
from worker.lookups.risk_table import expand, parse_text

# Scored against the unit tier's SAMPLE_RULES (tests/support/fakes.py): EXPECTED says how.
ZIPCODES = ("9000", "1501", "abc", "9170", "", "999", "1000", "1315", " 9240")
EXPECTED = {
    "9000": ("B", "ok"),
    "1501": ("", "unknown"),
    "abc": ("", "invalid"),
    "9170": ("A", "ok"),
    "": ("", "invalid"),
    "999": ("", "invalid"),
    "1000": ("C", "ok"),
    "1315": ("B", "ok"),
    " 9240": ("A", "ok"),
}
# Scored against the sample table (ops/sample_data) by a real worker.
SAMPLE = {str(z): f for z, f in expand(parse_text(SAMPLE_TABLE.read_text()))}
REAL_ZIPCODES = ("9000", "1501", "x1", "4500", "", "12345", "1000", " 3000 ", "9999")
LARGE_ZIPCODES = ("9000", "1501", "x", "4500", "", "999", "1000", "3000", "9999", "1320")

Note = Callable[[int], str]


def multiline_note(i: int) -> str:
    """A line break inside a quoted field in six rows of seven."""
    return "multi\nline" if i % 7 else ""


def blank_note(i: int) -> str:
    return ""


def numbered_note(i: int) -> str:
    return f"n{i}"


def quoted_note(i: int) -> str:
    """Quotes, a comma and a line break inside a quoted field in four rows of five."""
    return 'says "hi",\nbye' if i % 5 else ""


def portfolio(
    path: Path,
    rows: int,
    *,
    zipcodes: Sequence[str] = ZIPCODES,
    note: Note = multiline_note,
    newline: str = "\n",
) -> Path:
    """Write `rows` policies to `path` as CSV (UTF-8, `newline` after every row); `path`."""
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator=newline)
        writer.writerow(["policy", "zipcode", "note"])
        for start in range(0, rows, 10_000):
            writer.writerows(
                (f"P{i}", zipcodes[i % len(zipcodes)], note(i))
                for i in range(start, min(rows, start + 10_000))
            )
    return path


def check_output(path: Path, rows: int) -> None:
    """Every input row once, in order, with the unit table's factor and status."""
    with path.open(newline="", encoding="utf-8") as f:
        scored = list(csv.reader(f))
    assert scored[0] == ["policy", "zipcode", "note", "risk_factor", "status", "error"]
    assert [row[0] for row in scored[1:]] == [f"P{i}" for i in range(rows)]
    for row in scored[1:]:
        assert (row[3], row[4]) == EXPECTED[row[1]], row


def expected(zipcode: str, table: dict[str, str]) -> tuple[str, str]:
    """The factor and status a zipcode gets from `table`."""
    text = zipcode.strip()
    if not (text.isdigit() and 1000 <= int(text) <= 9999):
        return "", "invalid"
    factor = table.get(text)
    return (factor, "ok") if factor else ("", "unknown")


def check_scored(path: Path, rows: int, table: dict[str, str] = SAMPLE) -> None:
    """One output row per input row, in order, each scored against `table`."""
    with path.open(newline="") as f:
        scored = list(csv.reader(f))
    assert len(scored) == rows + 1
    assert [row[0] for row in scored[1:]] == [f"P{i}" for i in range(rows)]
    for row in scored[1:]:
        assert (row[3], row[4]) == expected(row[1], table), row
