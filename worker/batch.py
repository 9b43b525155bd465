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
import re
from collections.abc import Mapping
from dataclasses import dataclass
from operator import add
from typing import AnyStr, Generic, NamedTuple

from worker.validation import ZIPCODE_MAX, ZIPCODE_MIN

STATUS_OK = "ok"
STATUS_UNKNOWN = "unknown"
STATUS_INVALID = "invalid"
OUTPUT_COLUMNS = ("risk_factor", "status", "error")

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


# Where a scan of CSV text stands, for `quote_state`.
FIELD_START = 0  # at the start of a row or just after a `,`: a `"` here opens a quoted field
IN_FIELD = 1  # inside an unquoted field (or after a closed quoted one): a `"` is literal
IN_QUOTES = 2  # inside a quoted field: `,` and line breaks are text
QUOTE_IN_QUOTES = 3  # just after a `"` inside a quoted field: `""` is a quote, else it closed

# The rest of a quoted field after its opening `"` (or from inside it): text and `""` pairs,
# then the closing `"`. Possessive, so it never backtracks into a `""` pair: a match ending
# before the end of the scanned text is a closed field; one ending exactly there may be the
# first half of a `""` pair; no match means the field is still open at the end.
_QUOTED_REST = r'(?:[^"]++|"")*+"'
# One field: quoted (closed, perhaps followed by text: bad quoting, yet one field), or
# unquoted (not starting with `"`; any `"` in it is text), or empty. The alternatives differ
# in their first character and every quantifier is possessive: matching is linear.
_FIELD = rf'(?:"{_QUOTED_REST}[^,\n]*+|[^,\n"][^,\n]*+|)'
_FIELDS = rf"{_FIELD}(?:,{_FIELD})*+"
# As many whole rows (each up to its line ending) as follow from a field's start.
_WHOLE_ROWS = rf"(?:{_FIELDS}\n)*+"
# One whole row, without its line ending (findall gives the rows of a text in one call).
_ROW = re.compile(rf"({_FIELDS})\n")


class Marks(NamedTuple, Generic[AnyStr]):
    """The characters and patterns `quote_state` looks for, as `str` or as `bytes`."""

    quote: AnyStr
    comma: AnyStr
    newline: AnyStr
    quoted_rest: re.Pattern[AnyStr]
    whole_rows: re.Pattern[AnyStr]


STR_MARKS = Marks('"', ",", "\n", re.compile(_QUOTED_REST), re.compile(_WHOLE_ROWS))
BYTE_MARKS = Marks(
    b'"', b",", b"\n", re.compile(_QUOTED_REST.encode()), re.compile(_WHOLE_ROWS.encode())
)


def quote_state(data: AnyStr, start: int, end: int, state: int, marks: Marks[AnyStr]) -> int:
    """The scan state after `data[start:end]`, entered in `state` (RFC 4180 quoting).

    `marks` is `STR_MARKS` or `BYTE_MARKS`, after `data`'s type. A `"` opens a quoted field
    only at a field's start (a row's start, or after `,`); inside one, `""` is an escaped
    quote and a lone `"` closes it; any other `"` is literal text. A line ending is a row
    boundary exactly when the state after it is not `IN_QUOTES`.

    Text without `"` is one C-level search (`find`). From the row holding the first `"`, the
    whole rows that follow are crossed with one regex match; only the last, unfinished row
    is walked quote by quote. States carry across calls, so text may be scanned in blocks
    cut anywhere.
    """
    pos = start
    while pos < end:
        if state == IN_QUOTES:
            closed = marks.quoted_rest.match(data, pos, end)
            if closed is None:
                return IN_QUOTES
            pos = closed.end()
            # Closed, unless the last `"` is the first half of a `""` cut off at `end`.
            state = QUOTE_IN_QUOTES if pos == end else IN_FIELD
        elif state == QUOTE_IN_QUOTES:
            if data[pos : pos + 1] == marks.quote:  # an escaped quote
                pos, state = pos + 1, IN_QUOTES
            else:  # it closed the field: what follows is read as outside quotes
                state = IN_FIELD
        else:
            pos, state = _outside_quotes(data, pos, end, state, marks)
    return state


def _outside_quotes(
    data: AnyStr, pos: int, end: int, state: int, marks: Marks[AnyStr]
) -> tuple[int, int]:
    """One step of `quote_state` from outside a quoted field: the next position and state."""
    found = data.find(marks.quote, pos, end)
    if found < 0:
        return end, FIELD_START if data[end - 1 : end] in (marks.comma, marks.newline) else IN_FIELD
    row_start = data.rfind(marks.newline, pos, found) + 1
    if row_start > pos:  # no quote before that line ending: it ended a row
        pos, state = row_start, FIELD_START
    if state == FIELD_START:
        rows = marks.whole_rows.match(data, pos, end)
        if rows is not None and rows.end() > pos:
            return rows.end(), FIELD_START
    if found == pos:
        opens = state == FIELD_START
    else:
        opens = data[found - 1 : found] in (marks.comma, marks.newline)
    return found + 1, IN_QUOTES if opens else IN_FIELD


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


@dataclass(frozen=True)
class ChunkResult:
    """The scored rows of one chunk and what they came to."""

    text: str
    rows: int
    ok: int
    unknown: int
    invalid: int


def split_rows(text: str) -> list[str]:
    """The rows of `text` without their final line ending (`\\r\\n` or `\\n`).

    A line break inside a quoted field stays inside its row. Text after the last line
    ending (a last row without one) is a row too.
    """
    lines: list[str] = _ROW.findall(text) if '"' in text else []
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


def output_header(header_row: str) -> str:
    """The output's header row: the input's header text, then the three new columns."""
    return header_row + "," + ",".join(OUTPUT_COLUMNS)
