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


class _Cutter:
    """Cuts a stream of bytes (fed in any pieces) into chunks; see the module docstring.

    It fails only on a row longer than `max_bytes`, which the check refuses up front. Each
    cut looks at a window of about twice the last chunk, never at all that was fed: the work
    stays linear in the input, whatever the size of the pieces fed and of the chunks cut.
    """

    def __init__(self, start: int, index: int, lines: int, max_bytes: int) -> None:
        self.start = start
        self.index = index
        self.lines = lines
        self.max_bytes = max_bytes
        self.buf = b""
        self.pos = 0
        self.window = 64 * 1024

    def feed(self, data: bytes, *, eof: bool = False) -> Iterator[Chunk]:
        """The chunks complete once `data` is added (all the rest when `eof`).

        Raises:
            RowTooLong: a row longer than `max_bytes`.
        """
        self.buf = self.buf[self.pos :] + data if self.pos < len(self.buf) else data
        self.pos = 0
        while (end := self._end(eof)) is not None:
            data = self.buf[self.pos : self.pos + end]
            yield Chunk(self.index, self.start, self.start + end, data)
            self.pos += end
            self.start += end
            self.index += 1
            self.window = max(self.window, 2 * end)

    def _end(self, eof: bool) -> int | None:
        """Where the next chunk ends (relative to `pos`), or None until more is fed."""
        buf, pos, limit = self.buf, self.pos, self.max_bytes
        avail = len(buf) - pos
        if avail == 0:
            return None
        window = min(self.window, avail)
        while True:
            end = cut(
                buf[pos : pos + window], self.lines
            )  # what `cut` finds, it finds in any longer window
            if end is not None:
                if end <= limit:
                    return end
                break
            if window >= avail:
                if avail <= limit:
                    return avail if eof else None  # at the end: the rest (a last row, unended)
                break
            if window > limit:
                break
            window = min(2 * window, avail)
        # `lines` lines are more than `limit` bytes: end at the last row boundary within them.
        boundary = last_boundary(buf[pos : pos + limit], limit)
        if boundary == 0:
            raise RowTooLong(self.start, limit)
        return boundary


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
    never scored. Holds at most one chunk (and one read block) in memory.

    Raises:
        RowTooLong: one row is longer than `max_bytes` (the check refuses such a file).
    """
    handle.seek(start)
    cutter = _Cutter(start, index, lines, max_bytes)
    read_size = 1024 * 1024
    pos = start
    while True:
        want = read_size if end is None else min(read_size, end - pos)
        more = handle.read(want) if want > 0 else b""
        pos += len(more)
        produced = 0
        for chunk in cutter.feed(more, eof=not more):
            produced = max(produced, chunk.end - chunk.start)
            yield chunk
        if not more:
            return
        # Read about one chunk ahead next time, so a chunk is found in one or two reads.
        read_size = max(read_size, produced)


def read_chunk(handle: BinaryIO, start: int, end: int) -> bytes:
    """A chunk's bytes again (to resubmit it), read from its recorded byte range.

    Reads with pread, so the position of a running `iter_chunks` on the same file is kept.
    """
    return os.pread(handle.fileno(), end - start, start)
