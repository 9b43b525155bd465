"""The CSV row grammar both sides cut and score by: RFC 4180 quoting, scanned fast.

A row is one line, or several when a quoted field holds line breaks: a line ending is a row
boundary unless it is inside a quoted field. A `"` opens a quoted field only at the start of
a field; anywhere else it is literal text and never moves a row boundary. The producer cuts
chunks on row boundaries with `quote_state` over bytes; the worker splits a chunk into rows
with the same grammar over text.
"""

from __future__ import annotations

import re
from typing import AnyStr, Generic, NamedTuple

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
ROW = re.compile(rf"({_FIELDS})\n")


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
