"""Portfolio files to score, and the check of a scored file against the sample risk table."""

from __future__ import annotations

import csv
from pathlib import Path

from tests.support.paths import SAMPLE_TABLE
from worker.lookups.risk_table import expand, parse_text

# The sample risk table by zipcode text: "9000" -> "B".
SAMPLE = {str(z): f for z, f in expand(parse_text(SAMPLE_TABLE.read_text()))}
# Valid, unknown and invalid zipcodes in turn; row i carries ZIPCODES[i % 10].
ZIPCODES = ["9000", "1501", "x", "4500", "", "999", "1000", "3000", "9999", "1320"]


def portfolio(path: Path, rows: int) -> Path:
    """`id,zipcode,note` with `rows` rows (ids 0..rows-1), written in blocks of 10,000."""
    with path.open("w", newline="") as out:
        out.write("id,zipcode,note\n")
        for start in range(0, rows, 10_000):
            out.write(
                "".join(
                    f"{i},{ZIPCODES[i % len(ZIPCODES)]},n{i}\n"
                    for i in range(start, min(rows, start + 10_000))
                )
            )
    return path


def check(path: Path, rows: int) -> None:
    """One output row per input row, in order, each scored against the sample table."""
    with path.open(newline="") as f:
        scored = list(csv.reader(f))
    assert len(scored) == rows + 1
    assert [row[0] for row in scored[1:]] == [str(i) for i in range(rows)]
    for row in scored[1:]:
        zipcode = row[1]
        if zipcode.isdigit() and 1000 <= int(zipcode) <= 9999:
            factor = SAMPLE.get(zipcode, "")
            assert (row[3], row[4]) == (factor, "ok" if factor else "unknown"), row
        else:
            assert (row[3], row[4]) == ("", "invalid"), row
