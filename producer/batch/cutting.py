"""Cutting a batch's body into chunks of whole rows, as bytes, without parsing fields.

    with open("in.csv", "rb") as f:
        for chunk in iter_chunks(f, layout.body_start, 0, lines=20_000, max_bytes=MB):
            ...   # chunk.index, chunk.start, chunk.end, chunk.data (whole rows, as bytes)

The body is cut into chunks of `lines` lines on row boundaries without parsing fields
(workers parse rows). A line ending is a row boundary unless it is inside a quoted field,
so a line break inside a quoted field never splits a row. Quoting is RFC 4180's
(`worker.contract.csv_rows.quote_state`): a `"` opens a quoted field only at the start of a
field; inside one `""` is a quote and a lone `"` closes it; a `"` anywhere else
(`1,5" disk,9000`) is literal text and never moves a row boundary. Text without `"` needs
no state machine: one C-level search tells it has none.

A chunk is `lines` lines, or fewer when those would be more than `max_bytes`: then it ends
at the last row boundary within `max_bytes`. Only a single row longer than `max_bytes` cannot
be cut, and the check (`producer.batch.prescan`) refuses such a file up front.

Chunks are a pure function of the input bytes, the start offset, `lines` and `max_bytes`:
cutting again from a recorded offset (a resumed job) gives the same chunks, with the same
indexes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from producer.batch import fast_scan
from worker.contract.csv_rows import BYTE_MARKS, FIELD_START, IN_QUOTES, quote_state
from worker.contract.errors import ErrorCode, ZipscoreError

MB = 1024 * 1024


@dataclass(frozen=True)
class Chunk:
    """Whole rows of the body: bytes `start`..`end` of the file (UTF-8, checked up front)."""

    index: int
    start: int
    end: int
    data: bytes


class RowTooLong(ZipscoreError):
    """One row (from byte `start`) is longer than a chunk may be: no chunk can hold it."""

    def __init__(self, start: int, max_bytes: int) -> None:
        super().__init__(
            ErrorCode.BAD_INPUT_FILE,
            f"the row at byte {start} is longer than {describe_size(max_bytes)}, the most a chunk "
            "may hold (ZIPSCORE_BATCH_MAX_CHUNK_MB)",
        )
        self.start = start
        self.max_bytes = max_bytes


def describe_size(count: int) -> str:
    return f"{count // MB} MB" if count % MB == 0 else f"{count} bytes"


def cut(buf: bytes, lines: int) -> int | None:
    """Where `lines` whole lines of `buf` end on a row boundary, or None if `buf` is short.

    `buf` starts at a row boundary. The cut is extended past further line endings while a
    quoted field is open (RFC 4180 quoting, see the module docstring).
    """
    fast = fast_scan.cut(buf, lines)
    if fast != fast_scan.UNKNOWN:
        return fast
    parts = buf.split(b"\n", lines)
    if len(parts) <= lines:
        return None
    end = len(buf) - len(parts[-1])
    if buf.find(b'"', 0, end) < 0:  # the common case: no quotes, lines are rows
        return end
    state = quote_state(buf, 0, end, FIELD_START, BYTE_MARKS)
    while state == IN_QUOTES:
        nxt = buf.find(b"\n", end)
        if nxt < 0:
            return None
        state = quote_state(buf, end, nxt + 1, state, BYTE_MARKS)
        end = nxt + 1
    return end


def last_boundary(buf: bytes, limit: int) -> int:
    """The last row boundary within `buf[:limit]` (0 if none); `buf` starts at one.

    Without quotes every line ending is one. With quotes, the regex that crosses whole rows
    (the same one `quote_state` uses) finds a boundary in one C-level match; only if it
    matches no row at all are the line endings walked one by one. Either way the answer is
    a pure function of `buf[:limit]`, so chunks cut with it are the same on every run.
    """
    if buf.find(b'"', 0, limit) < 0:
        return buf.rfind(b"\n", 0, limit) + 1
    rows = BYTE_MARKS.whole_rows.match(buf, 0, limit)
    if rows is not None and rows.end() > 0:
        return rows.end()
    pos, state, last = 0, FIELD_START, 0
    while (nxt := buf.find(b"\n", pos, limit)) >= 0:
        state = quote_state(buf, pos, nxt + 1, state, BYTE_MARKS)
        pos = nxt + 1
        if state != IN_QUOTES:
            last = pos
    return last


def _next_end(buf: bytes, lines: int, max_bytes: int, *, at_end: bool) -> int | None:
    """Where the chunk that starts `buf` ends, or None if `buf` is too short to tell.

    `at_end`: `buf` holds all that is left of the body. What `cut` finds, it finds in any
    longer window, so the answer never depends on how much was read past it.
    """
    end = cut(buf, lines)
    if end is None:
        if at_end and len(buf) <= max_bytes:
            return len(buf)  # the rest: a last row without its line ending, or short lines
        if not at_end and len(buf) <= max_bytes:
            return None
    elif end <= max_bytes:
        return end
    # `lines` lines are more than `max_bytes`: end at the last row boundary within them.
    return last_boundary(buf[:max_bytes], max_bytes)


def iter_chunks(
    handle: BinaryIO,
    start: int,
    index: int,
    *,
    lines: int,
    max_bytes: int,
    end: int | None = None,
) -> Iterator[Chunk]:
    """The chunks of the body from byte `start` (a chunk boundary), numbered from `index`.

    Reads no further than byte `end` (the size the check saw), so bytes appended since are
    never scored. Each chunk is found in one window read from its start (with `pread`, which
    leaves the handle's position alone), a quarter larger than the largest chunk so far:
    about one read and one scan of each byte. Holds one window in memory.

    Raises:
        RowTooLong: one row is longer than `max_bytes` (the check refuses such a file).
    """
    fd = handle.fileno()
    window = 64 * 1024
    pos = start
    while True:
        want = window if end is None else min(window, end - pos)
        buf = os.pread(fd, want, pos) if want > 0 else b""
        if not buf:
            return
        at_end = len(buf) < window  # the end of the file, or of what the check saw
        found = _next_end(buf, lines, max_bytes, at_end=at_end)
        if found is None:
            window *= 2  # not `lines` lines yet, and under `max_bytes`: look further
            continue
        if found == 0:
            raise RowTooLong(pos, max_bytes)
        yield Chunk(index, pos, pos + found, buf[:found])
        pos += found
        index += 1
        window = max(window, found + found // 4)


def read_chunk(handle: BinaryIO, start: int, end: int) -> bytes:
    """A chunk's bytes again (to resubmit it), read from its recorded byte range.

    Reads with pread, so the position of a running `iter_chunks` on the same file is kept.
    """
    return os.pread(handle.fileno(), end - start, start)
