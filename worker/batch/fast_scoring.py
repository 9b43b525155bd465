"""Scoring one chunk with array operations over its raw bytes, byte for byte as `score_chunk`.

    scored = score_bytes(data, table, column=2, columns=4, newline="\\n")
    if scored is None:              # a chunk this path cannot prove it reads the same way
        ...                         # score it with worker.batch.scoring.score_chunk instead
    scored.data                     # == score_chunk(data.decode(), ...).text.encode()

How a chunk is read without a per-row Python loop (numpy over the bytes):

- Quotes: under RFC 4180 (`worker.contract.csv_rows.quote_state`) the n-th `"` of a chunk
  opens a quoted field when n is even and closes it (or is half of a `""`) when n is odd,
  provided every even one stands at a field's start (after `,`, a line ending, or at byte
  0) or right after the odd one before it (the second half of `""`). That is checked for
  all quotes at once; a chunk where it fails (a literal `"` inside an unquoted field,
  `5" disk`) or that ends inside a quoted field is left to the exact path (None).
- A `\\n` or `,` is outside quotes exactly when an even number of quotes precede it (a
  running count over the quotes and delimiters): the row boundaries and field delimiters.
- Each row's zipcode field is found from its delimiters; a field of four ASCII digits, the
  first not 0, is the table's canonical key: its suffix comes from a 10,000-entry array.
- A row read as the csv module reads it, with `columns` fields but a zipcode field in any
  other form (empty, `abc`, `999`) and unquoted, gets `ScoringTable.suffix` of that field's
  text, once per distinct field of the chunk. Any other row the arrays cannot vouch for (a
  column count that differs, a quoted zipcode field, a `\\r` or NUL inside the row, a
  closing quote followed by text, an empty row, a quoted row longer than the csv module's
  field limit) gets its suffix from the exact per-row code
  (`worker.batch.scoring._row_suffix`), so its text is what the exact path would give.
- The output (each row's own bytes, its suffix, `newline`): the suffixes slipped in before
  the line endings where every row ends with `newline`; else the chunk less its line
  endings, with each suffix and `newline` scattered in between from a small pool.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from worker.batch.assembly import assemble
from worker.batch.scoring import _UNKNOWN, ScoringTable, _row_suffix
from worker.contract.batch_output import ScoredBytes
from worker.contract.heap import keep_freed_memory_for_reuse
from worker.contract.validation import ZIPCODE_MAX, ZIPCODE_MIN

QUOTE, COMMA, LF, CR, NUL, ZERO = 34, 44, 10, 13, 0, 48
keep_freed_memory_for_reuse()  # each chunk's arrays reuse the last one's memory

Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class _Codes:
    """A table as arrays: zipcode -> suffix id, and each id's suffix text."""

    table: ScoringTable
    by_zipcode: npt.NDArray[np.int32]  # 10,000 entries; ids index `suffixes`
    suffixes: tuple[str, ...]  # id 0: unknown; 1..: the ok suffixes


_compiled: dict[int, _Codes] = {}


def _codes(table: ScoringTable) -> _Codes:
    """The table's arrays, built once per table object (a process keeps a few tables)."""
    found = _compiled.get(id(table))
    if found is not None and found.table is table:
        return found
    suffixes = (_UNKNOWN, *table.ok_suffixes)
    ids = {suffix: i for i, suffix in enumerate(suffixes)}
    by_zipcode = np.zeros(ZIPCODE_MAX + 1, dtype=np.int32)
    for zipcode in range(ZIPCODE_MIN, ZIPCODE_MAX + 1):
        by_zipcode[zipcode] = ids[table.suffixes[str(zipcode)]]
    if len(_compiled) >= 8:
        _compiled.clear()
    codes = _Codes(table, by_zipcode, suffixes)
    _compiled[id(table)] = codes
    return codes


def _quotes_follow_parity(buf: npt.NDArray[np.uint8], quotes: Ints) -> bool:
    """Whether quote parity is the RFC 4180 state: every even quote opens a field or is the
    second half of `""`, and the chunk does not end inside a quoted field."""
    if quotes.size % 2:
        return False
    opening, closing = quotes[0::2], quotes[1::2]
    before = buf[np.maximum(opening - 1, 0)]
    fine = (before == COMMA) | (before == LF) | (opening == 0)
    fine[1:] |= opening[1:] == closing[:-1] + 1
    return bool(fine.all())


@dataclass(frozen=True)
class _Rows:
    """A chunk's rows: `marks` are the delimiters outside quotes (`,` and line endings)
    between a virtual line ending before byte 0 and, when the chunk does not end with one,
    a virtual one at its end; row r runs from marks[bounds[r]] to marks[bounds[r + 1]]."""

    marks: Ints
    bounds: Ints
    starts: Ints
    ends: Ints  # the row's text ends here: without its line ending, nor one `\r` before it
    stripped: Ints  # where such a `\r` was


@dataclass(frozen=True)
class _Marks:
    """Every `,`, line feed and `"` of a chunk, in order (`at`); which of them are quotes
    (`quote`, 1 or 0); and the quotes' own positions (`quotes`)."""

    at: Ints
    quote: npt.NDArray[np.uint8]
    quotes: Ints


def _marks(buf: npt.NDArray[np.uint8]) -> _Marks:
    is_quote = buf == QUOTE
    at = np.flatnonzero((buf == COMMA) | (buf == LF) | is_quote)
    quote = (buf[at] == QUOTE).view(np.uint8)
    return _Marks(at, quote, at[quote.view(np.bool_)])


def _rows(buf: npt.NDArray[np.uint8], candidates: _Marks) -> _Rows:
    size = buf.size
    if candidates.quotes.size:
        # A delimiter is outside quotes when an even count of quotes precede it: not a
        # quote, and the running parity of quotes up to it is 0.
        quote = candidates.quote
        found = candidates.at[(np.bitwise_xor.accumulate(quote) | quote) == 0]
    else:
        found = candidates.at
    unended = found.size == 0 or found[-1] != size - 1 or buf[size - 1] != LF
    tail = np.array([size] if unended else [], dtype=np.int64)
    marks = np.concatenate((np.array([-1], dtype=np.int64), found, tail))
    is_end = np.ones(marks.size, dtype=np.bool_)  # the virtual line endings too
    is_end[1 : 1 + found.size] = buf[found] == LF
    bounds = np.flatnonzero(is_end)
    starts = marks[bounds[:-1]] + 1
    raw_ends = marks[bounds[1:]]
    stripped = (raw_ends > starts) & (buf[np.maximum(raw_ends - 1, 0)] == CR)
    ends = raw_ends - stripped
    return _Rows(marks, bounds, starts, ends, ends[stripped])


@dataclass(frozen=True)
class _Zipcodes:
    """Each row's zipcode field: where it is, whether the row has `columns` fields (`whole`),
    and whether the field is canonical (four ASCII digits, the first not 0: the table's own
    keys, 1000-9999), with its value."""

    start: Ints
    end: Ints
    whole: npt.NDArray[np.bool_]
    canonical: npt.NDArray[np.bool_]
    values: Ints


def _zipcodes(buf: npt.NDArray[np.uint8], rows: _Rows, column: int, columns: int) -> _Zipcodes:
    marks, bounds, starts, ends = rows.marks, rows.bounds, rows.starts, rows.ends
    whole = bounds[1:] - bounds[:-1] == columns
    first = np.minimum(bounds[:-1] + column, marks.size - 2)
    start = np.where(whole, marks[first] + 1, starts)
    end = ends if column == columns - 1 else np.where(whole, marks[first + 1], ends)
    canonical = whole & (end - start == 4)
    values = np.zeros(starts.size, dtype=np.int64)
    for i in range(4):
        digit = buf[np.minimum(start + i, buf.size - 1)].astype(np.int64) - ZERO
        canonical &= (digit >= 0) & (digit <= 9)
        values = values * 10 + digit
    canonical &= values >= ZIPCODE_MIN
    return _Zipcodes(start, end, whole, canonical, np.where(canonical, values, 0))


def score_bytes(
    data: bytes, table: ScoringTable, *, column: int, columns: int, newline: str = "\n"
) -> ScoredBytes | None:
    """Score the chunk `data` as `worker.batch.scoring.score_chunk` would, or None when it
    cannot prove that it reads the chunk identically (then score it the exact way)."""
    if not data:
        return ScoredBytes(b"", 0, 0, 0, 0)
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return None  # the exact path reports it
    buf = np.frombuffer(data, dtype=np.uint8)
    marks = _marks(buf)
    quotes = marks.quotes
    if quotes.size and not _quotes_follow_parity(buf, quotes):
        return None
    rows = _rows(buf, marks)
    starts, ends = rows.starts, rows.ends
    sound = np.ones(starts.size, dtype=np.bool_)  # rows read as the csv module reads them
    _mark_odd_bytes(buf, starts, rows.stripped, sound)
    if quotes.size:
        _mark_quoted_rows(buf, quotes, starts, ends, sound)
    zipcodes = _zipcodes(buf, rows, column, columns)
    by_field = sound & zipcodes.whole  # the suffix is the zipcode field's alone

    codes = _codes(table)
    ids = codes.by_zipcode[zipcodes.values].astype(np.int64)
    suffixes = list(codes.suffixes)
    known = {suffix: i for i, suffix in enumerate(suffixes)}
    of_field: dict[bytes, str] = {}  # the few odd zipcode fields of a chunk, each once
    for row in np.flatnonzero(~(by_field & zipcodes.canonical)).tolist():
        field = data[zipcodes.start[row] : zipcodes.end[row]] if by_field[row] else b'"'
        if b'"' not in field:  # unquoted: its text is the field's bytes
            suffix = of_field.get(field) or of_field.setdefault(
                field, table.suffix(field.decode("utf-8"))
            )
        else:  # the exact per-row code
            text = data[starts[row] : ends[row]].decode("utf-8")
            suffix = _row_suffix(text, table, column, columns)
        ids[row] = known.setdefault(suffix, len(suffixes))
        if ids[row] == len(suffixes):
            suffixes.append(suffix)
    counts = np.bincount(ids, minlength=len(suffixes))
    ok = int(counts[1 : 1 + len(table.ok_suffixes)].sum())
    unknown, count = int(counts[0]), starts.size
    pieces = [suffix.encode("utf-8") for suffix in suffixes]
    output = assemble(buf, starts, ends, ids, suffixes=pieces, newline=newline)
    return ScoredBytes(output, count, ok, unknown, count - ok - unknown)


def _row_of(starts: Ints, positions: Ints) -> Ints:
    return np.searchsorted(starts, positions, side="right") - 1


def _mark_odd_bytes(
    buf: npt.NDArray[np.uint8], starts: Ints, stripped: Ints, sound: npt.NDArray[np.bool_]
) -> None:
    """Rows holding a `\\r` (other than one stripped before a line ending, at `stripped`)
    or a NUL: the exact way."""
    odd = (buf == CR) | (buf == NUL)
    odd[stripped] = False
    where = np.flatnonzero(odd)
    if where.size:
        sound[_row_of(starts, where)] = False


def _mark_quoted_rows(
    buf: npt.NDArray[np.uint8],
    quotes: Ints,
    starts: Ints,
    ends: Ints,
    sound: npt.NDArray[np.bool_],
) -> None:
    """Rows the csv module would read otherwise than their delimiters say: a closing quote
    followed by text (strict csv refuses it), or a field longer than csv's limit."""
    size = buf.size
    closing = quotes[1::2]
    after = closing + 1
    nxt = buf[np.minimum(after, size - 1)].astype(np.int64)
    then = buf[np.minimum(after + 1, size - 1)]
    # Fine: the chunk ends, a delimiter or line ending follows (outside quotes, as after
    # every closing quote), or `\r` then the line ending (or the chunk's end).
    fine = (after == size) | (nxt == COMMA) | (nxt == LF)
    fine |= (nxt == CR) & ((after + 1 == size) | (then == LF))
    fine[:-1] |= quotes[2::2] == after[:-1]  # `""`: the next quote follows at once
    if not fine.all():
        sound[_row_of(starts, closing[~fine])] = False
    long_rows = np.flatnonzero(ends - starts > csv.field_size_limit())
    if long_rows.size:
        quoted_rows = np.unique(_row_of(starts, quotes))
        sound[np.intersect1d(long_rows, quoted_rows)] = False
