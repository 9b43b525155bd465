"""What a data engineer would write instead of `zipscore score`: the peers of the batch bench.

    python ops/bench/peers.py csv    TABLE INPUT OUTPUT
    python ops/bench/peers.py duckdb TABLE INPUT OUTPUT
    python ops/bench/peers.py polars TABLE INPUT OUTPUT

TABLE is the expanded risk table (`zipcode,risk_factor`, one row a zipcode); INPUT a portfolio
CSV with a `zipcode` column. Each design writes every input row, in input order, plus
`risk_factor,status` (`ok` or `unknown`), and prints its row count as JSON. The batch bench
runs each as a whole process, so interpreter start and imports are timed as a user meets them.
The peers re-quote fields as their CSV writer likes; zipscore keeps every input row byte for
byte and classifies bad zipcodes too, so the peers do a little less work than zipscore does.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

THREADS = 2  # this machine's cores; both engines would take every core they see


def with_csv(table: Path, source: Path, target: Path) -> int:
    """The floor: csv.reader, one dict probe a row, csv.writer."""
    with table.open(newline="") as f:
        reader = csv.reader(f)
        next(reader)
        factors = dict(reader)
    rows = 0
    with (
        source.open(encoding="utf-8", newline="") as inp,
        target.open("w", encoding="utf-8", newline="") as out,
    ):
        reader, writer = csv.reader(inp), csv.writer(out)
        header = next(reader)
        column = header.index("zipcode")
        writer.writerow([*header, "risk_factor", "status"])
        get = factors.get
        for row in reader:
            factor = get(row[column])
            writer.writerow([*row, factor, "ok"] if factor else [*row, "", "unknown"])
            rows += 1
    return rows


def with_duckdb(table: Path, source: Path, target: Path) -> int:
    """DuckDB: LEFT JOIN on the zipcode, input order kept, COPY to CSV."""
    import duckdb  # each design pays for its own imports, inside its timing

    db = duckdb.connect(config={"threads": THREADS, "preserve_insertion_order": True})
    db.execute(
        "CREATE TABLE factors AS SELECT * FROM read_csv(?, header = true, all_varchar = true)",
        [str(table)],
    )
    db.execute(
        "CREATE TABLE portfolio AS SELECT row_number() OVER () AS _row, * "
        "FROM read_csv(?, header = true, all_varchar = true)",
        [str(source)],
    )
    query = (
        "SELECT p.* EXCLUDE (_row), f.risk_factor, "
        "CASE WHEN f.risk_factor IS NULL THEN 'unknown' ELSE 'ok' END AS status "
        "FROM portfolio p LEFT JOIN factors f ON p.zipcode = f.zipcode ORDER BY p._row"
    )
    # COPY takes no parameter for its target: the path is ours, quoted as a SQL literal.
    literal = "'" + str(target).replace("'", "''") + "'"
    db.execute(f"COPY ({query}) TO {literal} (HEADER, DELIMITER ',')")
    rows = db.execute("SELECT count(*) FROM portfolio").fetchone()
    return int(rows[0]) if rows else 0


def with_polars(table: Path, source: Path, target: Path) -> int:
    """Polars: left join on the zipcode, order kept, write_csv."""
    os.environ.setdefault("POLARS_MAX_THREADS", str(THREADS))
    import polars as pl  # after the thread cap, which it reads at import

    factors = pl.read_csv(table, infer_schema=False)
    portfolio = pl.read_csv(source, infer_schema=False)
    scored = portfolio.join(factors, on="zipcode", how="left", maintain_order="left")
    scored = scored.with_columns(
        pl.when(pl.col("risk_factor").is_null())
        .then(pl.lit("unknown"))
        .otherwise(pl.lit("ok"))
        .alias("status")
    )
    scored.write_csv(target)
    return scored.height


DESIGNS = {"csv": with_csv, "duckdb": with_duckdb, "polars": with_polars}


def main(argv: list[str]) -> int:
    if len(argv) != 4 or argv[0] not in DESIGNS:
        print(__doc__, file=sys.stderr)
        return 2
    design, table, source, target = argv[0], *map(Path, argv[1:])
    print(json.dumps({"design": design, "rows": DESIGNS[design](table, source, target)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
