"""Benchmark inputs: portfolios of any size, written once and kept, and the peers' table."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from pathlib import Path

from ops.bench.environment import SAMPLE_TABLE
from worker.lookups.risk_table import expand, parse_text


def write_once(path: Path, header: str, lines: Iterator[str]) -> Path:
    """Write `header` and `lines` to `path` unless it exists (inputs are kept between runs)."""
    if path.exists() and path.stat().st_size > 0:
        return path
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as out:
        out.write(header)
        while block := list(itertools.islice(lines, 100_000)):
            out.write("".join(block))
    tmp.rename(path)
    return path


def generate(path: Path, rows: int) -> Path:
    """A portfolio: policy id, zipcode (1 % bad, the rest 1000-9999), insured value, date."""
    rng = random.Random(rows)  # noqa: S311 - test data, not secrets
    bad = ["", "abc", "999", "10000", " 9000"]

    def lines() -> Iterator[str]:
        for i in range(rows):
            zipcode = rng.choice(bad) if rng.random() < 0.01 else str(rng.randint(1000, 9999))
            yield (
                f"P{i:09d},{zipcode},{rng.randint(1_000, 900_000)},"
                f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}\n"
            )

    return write_once(path, "policy_id,zipcode,insured_value,start_date\n", lines())


FIRST_NAMES = ["Jan", "Marie", "Luc", "Anne-Sophie", "Mohamed", "Els", "Pieter", "Lotte"]
LAST_NAMES = ["Peeters", "Janssens", "Maes", "Dubois", "Van den Broeck", "O'Neil", "Lambert"]


def generate_portfolio(path: Path, rows: int, *, windows: bool = False) -> Path:
    """A realistic portfolio: `customer_id,name,zipcode,premium`; names like `"Maes, Jan"`
    (a quoted comma) or `"Els ""Lizzy"" Peeters"` (doubled quotes); 1 % bad zipcodes.
    `windows`: the same rows as a spreadsheet on Windows saves them, a UTF-8 BOM and CRLF."""
    ending = "\r\n" if windows else "\n"
    rng = random.Random(rows + 1)  # noqa: S311 - test data, not secrets
    bad = ["", "abc", "999", "10000", "12a4"]

    def lines() -> Iterator[str]:
        for i in range(rows):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            shape = rng.random()
            if shape < 0.3:
                name = f'"{last}, {first}"'
            elif shape < 0.4:
                name = f'"{first} ""{first[:3]}"" {last}"'
            else:
                name = f"{first} {last}"
            zipcode = rng.choice(bad) if rng.random() < 0.01 else str(rng.randint(1000, 9999))
            yield f"C{i:08d},{name},{zipcode},{rng.randint(100, 5_000)}.{i % 100:02d}{ending}"

    header = ("\ufeff" if windows else "") + "customer_id,name,zipcode,premium" + ending
    return write_once(path, header, lines())


def expanded_table(path: Path) -> Path:
    """The sample risk table, one `zipcode,risk_factor` row a zipcode, for the peers."""
    pairs = expand(parse_text(SAMPLE_TABLE.read_text()))
    path.write_text(
        "zipcode,risk_factor\n" + "".join(f"{zipcode},{factor}\n" for zipcode, factor in pairs)
    )
    return path
