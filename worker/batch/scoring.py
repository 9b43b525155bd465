"""Scoring one chunk of a batch: CSV text in, the same rows with three columns appended out.

    table = ScoringTable.from_pairs(version, {9000: "B", ...})
    result = score_chunk(text, table, column=1, columns=3, newline="\\r\\n")
    result.text     # every input row unchanged, then `,risk_factor,status,error`, in order
    result.rows, result.ok, result.unknown, result.invalid

A chunk is whole rows of the input body (the producer cuts it on row boundaries). A row is
one line, or several when a quoted field holds line breaks: a line ending is a row boundary
unless it is inside a quoted field (RFC 4180 quoting, see `quote_state`). A `"` opens a
quoted field only at the start of a field; anywhere else it is literal text and never moves
a row boundary (the csv module then scores the row, or it is `malformed CSV quoting`).

Each output row is the input row's own text, byte for byte (quoting included), without its
line ending, followed by `,<risk_factor>,<status>,<error>` and `newline` (the input's line
ending, read from its header). Rows never stop the chunk: a row with the wrong number of
columns, no zipcode, something that is not a number, a zipcode outside 1000-9999 or broken
quoting is `invalid` with the reason in `error`.

The common case (a chunk with no `"` at all) is one `str.split` per row and one dict probe
keyed by the zipcode's text; csv parsing is used only for rows that contain quotes.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from operator import add

from worker.contract.batch_output import (
    STATUS_INVALID,
    STATUS_OK,
    STATUS_UNKNOWN,
    ChunkResult,
)
from worker.contract.csv_rows import FIELD_START, IN_QUOTES, ROW, STR_MARKS, quote_state
from worker.contract.validation import ZIPCODE_MAX, ZIPCODE_MIN

REASON_EMPTY_ROW = "empty row"
REASON_NO_ZIPCODE = "no zipcode"
REASON_NOT_A_NUMBER = "zipcode is not a number"
REASON_OUT_OF_RANGE = f"zipcode outside {ZIPCODE_MIN}-{ZIPCODE_MAX}"
REASON_MALFORMED = "malformed CSV quoting"


def _invalid(reason: str) -> str:
    return f",,{STATUS_INVALID},{reason}"


def columns_reason(expected: int, found: int) -> str:
    """The error of a row with the wrong number of columns (no comma: needs no quoting)."""
    return f"expected {expected} columns but found {found}"


_UNKNOWN = f",,{STATUS_UNKNOWN},"
_NO_ZIPCODE = _invalid(REASON_NO_ZIPCODE)
_NOT_A_NUMBER = _invalid(REASON_NOT_A_NUMBER)
_OUT_OF_RANGE = _invalid(REASON_OUT_OF_RANGE)
_MALFORMED = _invalid(REASON_MALFORMED)
_EMPTY_ROW = _invalid(REASON_EMPTY_ROW)


@dataclass(frozen=True)
class ScoringTable:
    """One version of the risk table, as the suffix each zipcode's text gets.

    `suffixes` maps the canonical text of every valid zipcode ("1000" ... "9999") to its
    ready-made `,factor,ok,` or `,,unknown,` suffix, so a clean row costs one dict probe.
    """

    version: int
    suffixes: Mapping[str, str]
    ok_suffixes: tuple[str, ...]

    @classmethod
    def from_pairs(cls, version: int, factors: Mapping[int, str]) -> ScoringTable:
        """Build the table of `version` from `{zipcode: factor}`."""
        ok = {factor: f",{factor},{STATUS_OK}," for factor in sorted(set(factors.values()))}
        suffixes = {
            str(zipcode): ok[factors[zipcode]] if zipcode in factors else _UNKNOWN
            for zipcode in range(ZIPCODE_MIN, ZIPCODE_MAX + 1)
        }
        return cls(version, suffixes, tuple(ok.values()))

    def suffix(self, value: str) -> str:
        """The suffix of a zipcode field that is not in canonical form (spaces, junk...)."""
        text = value.strip()
        found = self.suffixes.get(text)
        if found is not None:
            return found
        if not text:
            return _NO_ZIPCODE
        if not (text.isascii() and text.isdigit()):
            return _NOT_A_NUMBER
        return _OUT_OF_RANGE  # digits, yet not one of 1000..9999 ("999", "0900", "12345")


def split_rows(text: str) -> list[str]:
    """The rows of `text` without their final line ending (`\\r\\n` or `\\n`).

    A line break inside a quoted field stays inside its row. Text after the last line
    ending (a last row without one) is a row too.
    """
    lines: list[str] = ROW.findall(text) if '"' in text else []
    # Whole rows back to back cover the text; else (no quotes, a last row without a line
    # ending, an unterminated quoted field) rows are found line by line.
    if sum(map(len, lines)) + len(lines) != len(text):
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()
        if '"' in text:
            lines = _join_quoted(lines)
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _join_quoted(lines: list[str]) -> list[str]:
    """Join the lines of rows whose quoted fields hold line breaks (see `quote_state`)."""
    rows: list[str] = []
    pending: list[str] = []
    state = FIELD_START
    for line in lines:
        if '"' in line:
            state = quote_state(line, 0, len(line), state, STR_MARKS)
        if state == IN_QUOTES:  # the line break is inside a quoted field
            pending.append(line)
            continue
        if pending:
            pending.append(line)
            rows.append("\n".join(pending))
            pending = []
        else:
            rows.append(line)
        state = FIELD_START
    if pending:  # an unterminated quoted field at the very end: keep the text as one row
        rows.append("\n".join(pending))
    return rows


def _row_suffix(row: str, table: ScoringTable, column: int, columns: int) -> str:
    """The suffix of one row, the general way (quotes, wrong widths, odd values)."""
    if '"' in row:
        try:
            parsed = list(csv.reader([row], strict=True))
        except csv.Error:
            return _MALFORMED
        if len(parsed) != 1:
            return _MALFORMED
        fields = parsed[0]
    elif row == "":
        return _NO_ZIPCODE if columns == 1 else _EMPTY_ROW
    else:
        fields = row.split(",")
    if len(fields) != columns:
        return _invalid(columns_reason(columns, len(fields)))
    return table.suffix(fields[column])


def score_chunk(
    text: str, table: ScoringTable, *, column: int, columns: int, newline: str = "\n"
) -> ChunkResult:
    """Score every row of `text`; see the module docstring for the output format.

    Args:
        text: whole rows of the input body, as cut by the producer.
        table: the risk table of the job's pinned version.
        column: index of the zipcode column; columns: how many columns the header has.
        newline: line ending written after every output row.
    """
    if '"' in text:
        rows = split_rows(text)
        suffixes = [_row_suffix(row, table, column, columns) for row in rows]
    else:
        # The fast path: no quotes, so rows are lines and fields are split on commas.
        if "\r" in text:
            text = text.replace("\r\n", "\n")
        rows = text.split("\n")
        if rows[-1] == "":
            rows.pop()
        elif rows[-1].endswith("\r"):  # a last row ending in a bare CR: as `split_rows` does
            rows[-1] = rows[-1][:-1]
        get = table.suffixes.get
        suffixes = [
            (get(fields[column]) or table.suffix(fields[column]))
            if len(fields := row.split(",")) == columns
            else _row_suffix(row, table, column, columns)
            for row in rows
        ]
    out = list(map(add, rows, suffixes))
    out.append("")
    ok = sum(suffixes.count(suffix) for suffix in table.ok_suffixes)
    unknown = suffixes.count(_UNKNOWN)
    return ChunkResult(
        text=newline.join(out) if out[:-1] else "",
        rows=len(rows),
        ok=ok,
        unknown=unknown,
        invalid=len(rows) - ok - unknown,
    )
