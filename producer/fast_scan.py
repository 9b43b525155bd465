"""The producer's scans of the input with array operations: the same answers as the exact ones.

    state = block_state(block, state)          # == quote_state(block, 0, len, state, BYTE_MARKS)
    end = cut(buf, lines)                      # == csv_chunks.cut(buf, lines), or UNKNOWN
    row = first_long_row(handle, start, size, max_bytes, block)   # None: every row fits

RFC 4180 quoting as `worker.batch.quote_state` reads it. From a row boundary, the n-th `"`
opens a quoted field when n is even and closes it (or is half of a `""`) when n is odd,
provided every even one stands at a field's start (after `,` or a line ending) or right
after the odd one before it (the second half of `""`): that is checked for all quotes at
once, and a line ending is a row boundary exactly when an even number of quotes precede it.
Where the check fails (a literal `"` inside an unquoted field) or a scan is entered in a
state it does not model, each function says so (UNKNOWN, None or False) and the caller runs
the exact scan: the answers are never different, only sometimes slower.
"""

from __future__ import annotations

from typing import BinaryIO, Final

import numpy as np
import numpy.typing as npt

from worker.batch import FIELD_START, IN_FIELD, IN_QUOTES, QUOTE_IN_QUOTES

QUOTE, COMMA, LF = 34, 44, 10
UNKNOWN: Final = -1  # `cut`, `first_long_row`: the exact scan must answer
# `first_long_row` carries the unfinished row from block to block; past this it leaves the file
# to the exact scan, so its own memory stays a block or two.
MAX_CARRY = 4 * 1024 * 1024

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
    if not block or state == QUOTE_IN_QUOTES:
        return None
    buf = np.frombuffer(block, dtype=np.uint8)
    quotes = np.flatnonzero(buf == QUOTE)
    first = 1 if state == IN_QUOTES else 0  # inside quotes: as if an opening quote preceded
    if not _parity_holds(buf, quotes, first=first, at_start=state == FIELD_START):
        return None
    if (quotes.size + first) % 2:
        return IN_QUOTES
    if quotes.size and quotes[-1] == buf.size - 1:
        return QUOTE_IN_QUOTES  # a closing quote, or the first half of a `""` cut off
    return FIELD_START if buf[-1] in (COMMA, LF) else IN_FIELD


def cut(buf: bytes, lines: int) -> int | None:
    """Where `lines` whole lines of `buf` end on a row boundary, as `csv_chunks.cut` says
    (None: `buf` is short), or UNKNOWN. `buf` starts at a row boundary."""
    arr = np.frombuffer(buf, dtype=np.uint8)
    newlines = np.flatnonzero(arr == LF)
    if newlines.size < lines:
        return None
    end = int(newlines[lines - 1]) + 1
    if buf.find(b'"', 0, end) < 0:
        return end
    quotes = np.flatnonzero(arr == QUOTE)
    if not _parity_holds(arr, quotes, first=0, at_start=True):
        return UNKNOWN
    # The first line ending from the lines-th on with an even count of quotes before it.
    later = newlines[lines - 1 :]
    outside = np.flatnonzero(np.searchsorted(quotes, later) % 2 == 0)
    return int(later[outside[0]]) + 1 if outside.size else None


def first_long_row(
    handle: BinaryIO, start: int, size: int, max_bytes: int, block: int
) -> int | None:
    """Where the first row of bytes `start`..`size` (`start` a row boundary) longer than
    `max_bytes`, line ending included, starts, as `csv_chunks._measure_rows` finds it; None
    if every row fits, UNKNOWN if only the exact scan can tell. Reads `block` bytes a time.
    """
    handle.seek(start)
    base, carry = start, b""  # `carry`: the unfinished row from `base`, a row boundary
    while more := handle.read(min(block, size - base - len(carry))):
        buf = carry + more
        arr = np.frombuffer(buf, dtype=np.uint8)
        quotes = np.flatnonzero(arr == QUOTE)
        if not _parity_holds(arr, quotes, first=0, at_start=True):
            return UNKNOWN
        newlines = np.flatnonzero(arr == LF)
        if quotes.size:
            newlines = newlines[np.searchsorted(quotes, newlines) % 2 == 0]
        bounds = np.concatenate((np.zeros(1, dtype=np.int64), newlines + 1))
        too_long = np.flatnonzero(np.diff(bounds) > max_bytes)
        if too_long.size:
            return base + int(bounds[too_long[0]])
        done = int(bounds[-1])
        base, carry = base + done, buf[done:]
        if len(carry) > max_bytes:
            return base
        if len(carry) > MAX_CARRY:
            return UNKNOWN
    # The last row, without a line ending: as the exact scan, which cannot tell the end of
    # the file while a row of exactly `max_bytes` fills its window, refuses that one too.
    return base if len(carry) >= max_bytes else None
