"""The producer's scans of the input with array operations: the same answers as the exact ones.

    state = block_state(block, state)          # == quote_state(block, 0, len, state, BYTE_MARKS)
    end = cut(buf, lines)                      # == cutting.cut(buf, lines), or UNKNOWN
    meter = RowMeter(start, max_bytes)         # the first row too long, in the same pass

RFC 4180 quoting as `worker.contract.csv_rows.quote_state` reads it. From a row boundary,
the n-th `"` opens a quoted field when n is even and closes it (or is half of a `""`) when
n is odd, provided every even one stands at a field's start (after `,` or a line ending)
or right after the odd one before it (the second half of `""`): that is checked for all
quotes at once, and a line ending is a row boundary exactly when an even number of quotes
precede it. Where the check fails (a literal `"` inside an unquoted field) or a scan is
entered in a state it does not model, each function says so (UNKNOWN or None) and the
caller runs the exact scan: the answers are never different, only sometimes slower.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from worker.contract.csv_rows import FIELD_START, IN_FIELD, IN_QUOTES, QUOTE_IN_QUOTES

QUOTE, COMMA, LF = 34, 44, 10
UNKNOWN: Final = -1  # `cut`, `RowMeter`: the exact scan must answer

Ints = npt.NDArray[np.int64]
Bytes = npt.NDArray[np.uint8]


def _parity_holds(buf: Bytes, quotes: Ints, *, first: int, at_start: bool) -> bool:
    """Whether quote parity is the RFC 4180 state over `buf`: the quote of index
    `first + i` is quotes[i]; each even one opens a field or is the second half of `""`.

    `at_start`: whether byte 0 is at a field's start (a quote there opens a field).
    """
    evens = quotes[first % 2 :: 2]
    if evens.size == 0:
        return True
    before = buf[np.maximum(evens - 1, 0)]
    opening = (before == COMMA) | (before == LF)
    if evens[0] == 0:
        opening[0] = at_start
    # `""`: the second half follows the odd quote before it at once.
    odds = quotes[1 - first % 2 :: 2]
    if first % 2:  # odds[i] comes just before evens[i]
        opening |= evens == odds[: evens.size] + 1
    else:  # odds[i] comes just before evens[i + 1]
        opening[1:] |= evens[1:] == odds[: evens.size - 1] + 1
    return bool(opening.all())


def block_state(block: bytes, state: int) -> int | None:
    """The scan state after `block` entered in `state`, or None if only the exact scan
    (`quote_state`) can tell."""
    buf = np.frombuffer(block, dtype=np.uint8)
    return _block_state(buf, np.flatnonzero(buf == QUOTE), state)


def _block_state(buf: Bytes, quotes: Ints, state: int) -> int | None:
    if buf.size == 0 or state == QUOTE_IN_QUOTES:
        return None
    first = 1 if state == IN_QUOTES else 0  # inside quotes: as if an opening quote preceded
    if not _parity_holds(buf, quotes, first=first, at_start=state == FIELD_START):
        return None
    if (quotes.size + first) % 2:
        return IN_QUOTES
    if quotes.size and quotes[-1] == buf.size - 1:
        return QUOTE_IN_QUOTES  # a closing quote, or the first half of a `""` cut off
    return FIELD_START if buf[-1] in (COMMA, LF) else IN_FIELD


def cut(buf: bytes, lines: int) -> int | None:
    """Where `lines` whole lines of `buf` end on a row boundary, as `cutting.cut` says
    (None: `buf` is short), or UNKNOWN. `buf` starts at a row boundary."""
    arr = np.frombuffer(buf, dtype=np.uint8)
    newlines = np.flatnonzero(arr == LF)
    if newlines.size < lines:
        return None
    end = int(newlines[lines - 1]) + 1
    if buf.find(b'"', 0, end) < 0:
        return end
    # Most often the lines-th line ending is outside quotes: the quotes before it tell.
    head = arr[:end]
    before = np.flatnonzero(head == QUOTE)
    if not _parity_holds(head, before, first=0, at_start=True):
        return UNKNOWN
    if before.size % 2 == 0:
        return end
    quotes = np.flatnonzero(arr == QUOTE)
    if not _parity_holds(arr, quotes, first=0, at_start=True):
        return UNKNOWN
    # The first line ending from the lines-th on with an even count of quotes before it.
    later = newlines[lines - 1 :]
    outside = np.flatnonzero(np.searchsorted(quotes, later) % 2 == 0)
    return int(later[outside[0]]) + 1 if outside.size else None


def _newline_outside(block: bytes, quotes: Ints, first: int, *, last: bool) -> int:
    """The first (or last) line ending of `block` outside quotes, or -1; the quote of index
    `first + i` is quotes[i] (see `_parity_holds`, which must hold)."""
    pos = len(block) if last else 0
    for _ in range(64):  # most line endings are outside quotes: a few C-level searches
        found = block.rfind(b"\n", 0, pos) if last else block.find(b"\n", pos)
        if found < 0:
            return -1
        if (first + int(np.searchsorted(quotes, found))) % 2 == 0:
            return found
        pos = found if last else found + 1
    outside = _newlines_outside(np.frombuffer(block, dtype=np.uint8), quotes, first)
    return -1 if outside.size == 0 else int(outside[-1] if last else outside[0])


def _newlines_outside(buf: Bytes, quotes: Ints, first: int) -> Ints:
    newlines = np.flatnonzero(buf == LF)
    if quotes.size == 0 and first == 0:
        return newlines
    outside: Ints = newlines[(np.searchsorted(quotes, newlines) + first) % 2 == 0]
    return outside


class RowMeter:
    """Finds, during the check's one pass over the body, the first row longer than
    `max_bytes` (line ending included) as `scan.measure_rows` would in a second one.

        meter = RowMeter(body_start, max_bytes)
        state = meter.block(block, offset, state)    # per block: the state after it, or None
        meter.end(size)
        meter.first_long_row()    # its start; None if every row fits; UNKNOWN: measure exactly

    While `max_bytes` is at least a block, only each block's first and last row boundary are
    needed (no longer row fits inside one block); else every boundary of the block is.
    """

    def __init__(self, start: int, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.boundary = start  # the last row boundary seen
        self.found: int | None = None
        self.exact = False

    def block(self, block: bytes, offset: int, state: int) -> int | None:
        """The scan state after `block` (at byte `offset`) entered in `state`, as
        `block_state` says (None: ask `quote_state`); measures the rows it ends."""
        buf = np.frombuffer(block, dtype=np.uint8)
        quotes = np.flatnonzero(buf == QUOTE)
        after = _block_state(buf, quotes, state)
        if after is None:
            self.exact = True
            return None
        if self.exact or self.found is not None:
            return after
        first = 1 if state == IN_QUOTES else 0
        if len(block) > self.max_bytes:
            bounds = _newlines_outside(buf, quotes, first) + 1 + offset
        else:
            head = _newline_outside(block, quotes, first, last=False)
            tail = _newline_outside(block, quotes, first, last=True)
            bounds = np.array([head, tail] if head >= 0 else [], dtype=np.int64) + 1 + offset
        if bounds.size:
            lengths = np.diff(np.concatenate(([self.boundary], bounds)))
            too_long = np.flatnonzero(lengths > self.max_bytes)
            if too_long.size:
                self.found = self.boundary if too_long[0] == 0 else int(bounds[too_long[0] - 1])
                return after
            self.boundary = int(bounds[-1])
        if offset + len(block) - self.boundary > self.max_bytes:
            self.found = self.boundary  # unfinished, and already too long
        return after

    def end(self, size: int) -> None:
        """The body ends at byte `size`: measure its last row, if it has no line ending.

        As the exact scan, which cannot tell the end of the file while a row of exactly
        `max_bytes` fills its window, a last row of that length is refused too.
        """
        if self.found is None and size - self.boundary >= self.max_bytes > 0:
            self.found = self.boundary

    def first_long_row(self) -> int | None:
        """Where the first row too long starts; None if none; UNKNOWN: measure exactly."""
        return UNKNOWN if self.exact else self.found
