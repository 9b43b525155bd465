"""Reading a batch's input CSV as bytes: its header, a checking pre-scan, and chunks of rows.

    with open("in.csv", "rb") as f:
        layout = inspect_handle(f, Path("in.csv"), "zipcode", lines=20_000, max_bytes=MB)
        for chunk in iter_chunks(f, layout.body_start, 0, lines=20_000, max_bytes=MB):
            ...   # chunk.index, chunk.start, chunk.end, chunk.data (whole rows, as bytes)

Only the header is parsed as CSV here: the body is cut into chunks of `lines` lines on row
boundaries without parsing fields (workers parse rows). A line ending is a row boundary
unless it is inside a quoted field, so a line break inside a quoted field never splits a row.
Quoting is RFC 4180's (`worker.batch.quote_state`): a `"` opens a quoted field only at the
start of a field; inside one `""` is a quote and a lone `"` closes it; a `"` anywhere else
(`1,5" disk,9000`) is literal text and never moves a row boundary. Text without `"` needs no
state machine: one C-level search tells it has none.

A chunk is `lines` lines, or fewer when those would be more than `max_bytes`: then it ends
at the last row boundary within `max_bytes`. Only a single row longer than `max_bytes` cannot
be cut, and the check refuses such a file up front: without quotes a row is a line, and
the check measures every line (a few C-level searches a block); in a file with quotes it
also measures every row (`_measure_rows`: no row boundary within `max_bytes` of one is
exactly where the cut would fail).

Chunks are a pure function of the input bytes, the start offset, `lines` and `max_bytes`:
cutting again from a recorded offset (a resumed job) gives the same chunks, with the same
indexes. The check also records a digest (SHA-256) of the bytes it checked, so the job can
prove it scored exactly those bytes (`InputLayout.cut_digest`).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from producer import fast_scan
from worker.batch import BYTE_MARKS, FIELD_START, IN_QUOTES, quote_state
from worker.errors import ErrorCode, ZipscoreError, echo

BOM = b"\xef\xbb\xbf"
SCAN_BLOCK = 8 * 1024 * 1024
MB = 1024 * 1024
DEFAULT_MAX_BYTES = 32 * MB
MAX_HEADER_BYTES = 1024 * 1024
_MAX_LISTED_COLUMNS = 12


@dataclass(frozen=True)
class InputLayout:
    """What the producer needs to know about an input file before it sends any row."""

    path: Path
    size: int
    mtime_ns: int
    bom: bool
    header: str  # the header row's text, without BOM and line ending
    columns: int
    column: int  # index of the zipcode column
    newline: str  # the header's line ending, used for every output row
    body_start: int  # byte offset of the first data row
    lines: int  # line endings in the body (rows, unless quoted fields hold line breaks)
    inode: int = 0
    digest: str = ""  # SHA-256 of the body as checked (bytes body_start..size)
    cut_from: int = 0  # where cut_digest starts (body_start, or a resumed job's offset)
    cut_digest: str = ""  # SHA-256 of bytes cut_from..size: what the job must cut, exactly
    quotes: bool = False  # whether the body holds a `"` (else its rows are its lines)

    @property
    def fingerprint(self) -> str:
        """Size and modification time: a resumed job refuses an input that changed."""
        return f"{self.size}:{self.mtime_ns}"

    def changed(self, now: os.stat_result) -> bool:
        """Whether `now` (an fstat of the open input) is not the file this layout checked."""
        return (now.st_size, now.st_mtime_ns, now.st_ino) != (self.size, self.mtime_ns, self.inode)


@dataclass(frozen=True)
class Chunk:
    """Whole rows of the body: bytes `start`..`end` of the file (UTF-8, checked up front)."""

    index: int
    start: int
    end: int
    data: bytes


def refuse(path: Path, reason: str) -> ZipscoreError:
    return ZipscoreError(ErrorCode.BAD_INPUT_FILE, f"{path}: {reason}")


class RowTooLong(ZipscoreError):
    """One row (from byte `start`) is longer than a chunk may be: no chunk can hold it."""

    def __init__(self, start: int, max_bytes: int) -> None:
        super().__init__(
            ErrorCode.BAD_INPUT_FILE,
            f"the row at byte {start} is longer than {_size(max_bytes)}, the most a chunk "
            "may hold (ZIPSCORE_BATCH_MAX_CHUNK_MB)",
        )
        self.start = start
        self.max_bytes = max_bytes


def _size(count: int) -> str:
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


def _header(path: Path, head: bytes) -> tuple[bool, str, str, int]:
    """BOM, header text, newline and body offset read from the file's first bytes."""
    bom = head.startswith(BOM)
    start = len(BOM) if bom else 0
    end = cut(head[start:], 1)
    if end is None:
        if len(head) >= MAX_HEADER_BYTES:
            raise refuse(path, f"no header line within the first {MAX_HEADER_BYTES} bytes")
        end = len(head) - start  # a header without a line ending: a file with no rows
    raw = head[start : start + end]
    newline = "\r\n" if raw.endswith(b"\r\n") else "\n"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise refuse(path, "not UTF-8 text (is it a CSV file?)") from None
    return bom, text.removesuffix("\n").removesuffix("\r"), newline, start + end


def find_column(path: Path, fields: list[str], name: str) -> int:
    """Index of the column called `name` (exact, else ignoring case and spaces)."""
    exact = [i for i, field in enumerate(fields) if field == name]
    if not exact:
        wanted = name.strip().casefold()
        exact = [i for i, field in enumerate(fields) if field.strip().casefold() == wanted]
    if len(exact) == 1:
        return exact[0]
    if exact:
        raise refuse(path, f"{len(exact)} columns are called {echo(name)}")
    listed = ", ".join(echo(f) for f in fields[:_MAX_LISTED_COLUMNS])
    more = " ..." if len(fields) > _MAX_LISTED_COLUMNS else ""
    raise refuse(path, f"no column {echo(name)} in the header (columns: {listed}{more})")


def inspect_input(
    path: Path,
    zipcode_column: str,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> InputLayout:
    """Open `path` and check it (`inspect_handle`); the producer keeps its handle instead."""
    handle = open_input(path)
    with handle:
        return inspect_handle(handle, path, zipcode_column, max_bytes=max_bytes)


def open_input(path: Path) -> BinaryIO:
    """The input, open for reading: a regular file (pread, seek and fstat must work on it).

    Raises:
        ZipscoreError: BAD_INPUT_FILE if it cannot be opened or is not a regular file.
    """
    try:
        # Non-blocking to open: a named pipe with no writer would block the open itself,
        # before the check below could refuse it. A regular file ignores the flag.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise refuse(path, f"cannot read it ({exc.strerror or type(exc).__name__})") from None
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise refuse(path, "not a regular file")
    os.set_blocking(descriptor, True)
    return os.fdopen(descriptor, "rb")


def inspect_handle(
    handle: BinaryIO,
    path: Path,
    zipcode_column: str,
    *,
    max_bytes: int,
    cut_from: int | None = None,
) -> InputLayout:
    """Read the header and check the whole body before any job exists.

    One pass over the open file in fixed-size blocks (memory stays flat), and a second for
    the rows of a file with quotes: UTF-8 throughout, no NUL byte, every quoted field closed
    (a `"` that opens one at a field's start; a stray `"` inside a field is text), and every
    row short enough for a chunk of `max_bytes`: every line is measured and, in a file with
    quotes (a quoted field joins lines), every row. It counts line endings for the progress
    bar and digests what it read, and apart the bytes from `cut_from` on (what a resumed job
    has still to cut).

    Raises:
        ZipscoreError: BAD_INPUT_FILE naming what is wrong, or saying the file changed
            while it was read (still being written?).
    """
    before = os.fstat(handle.fileno())
    handle.seek(0)
    head = handle.read(MAX_HEADER_BYTES)
    if not head.strip(BOM + b"\r\n\t "):
        raise refuse(path, "the file is empty (a CSV needs at least a header row)")
    bom, header, newline, body_start = _header(path, head)
    if "\x00" in header:
        raise refuse(path, "not a text file (NUL byte in the header)")
    try:
        rows = list(csv.reader([header]))
    except csv.Error:
        raise refuse(path, "the header row is not valid CSV") from None
    fields = rows[0] if len(rows) == 1 else []
    if not fields:
        raise refuse(path, "the header row is empty")
    column = find_column(path, fields, zipcode_column)
    start = body_start if cut_from is None else cut_from
    scan = _Scan(path, start, max_bytes)
    try:
        scan.body(handle, body_start)
        if scan.quotes:
            # A quoted field may join lines into a row longer than the limit (without
            # quotes, lines are rows and were measured above).
            found = scan.meter.first_long_row()
            if found == fast_scan.UNKNOWN:
                _measure_rows(handle, body_start, scan.offset, max_bytes)
            elif found is not None:
                raise RowTooLong(found, max_bytes)
    except RowTooLong as exc:
        line = _line_at(handle, body_start, exc.start)
        raise refuse(
            path,
            f"the row at line {line} is longer than {_size(exc.max_bytes)}, the most a "
            "chunk may hold (ZIPSCORE_BATCH_MAX_CHUNK_MB)",
        ) from None
    after = os.fstat(handle.fileno())
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns) or (
        scan.offset != after.st_size
    ):
        raise refuse(path, "it changed while it was checked (is it still being written?)")
    return InputLayout(
        path=path,
        size=after.st_size,
        mtime_ns=after.st_mtime_ns,
        bom=bom,
        header=header,
        columns=len(fields),
        column=column,
        newline=newline,
        body_start=body_start,
        lines=scan.lines,
        inode=after.st_ino,
        digest=scan.digest.hexdigest(),
        cut_from=start,
        cut_digest=scan.cut_digest.hexdigest(),
        quotes=scan.quotes,
    )


class _Scan:
    """The check of the body: block by block, validated, counted, digested, and its lines'
    lengths measured (a line longer than a chunk may be is a row no chunk can hold)."""

    def __init__(self, path: Path, cut_from: int, max_bytes: int) -> None:
        self.path = path
        self.cut_from = cut_from
        self.max_bytes = max_bytes
        self.digest = hashlib.sha256()
        self.cut_digest = self.digest  # the same bytes, unless a resume cuts from further on
        self.offset = 0
        self.lines = 0
        self.quotes = False
        self.line_start = 0
        self.meter = fast_scan.RowMeter(0, max_bytes)  # rows measured in the same pass

    def body(self, handle: BinaryIO, start: int) -> None:
        """Scan the body from byte `start` to the end of the file.

        Raises:
            ZipscoreError: BAD_INPUT_FILE naming what is wrong.
            RowTooLong: a line longer than `max_bytes`.
        """
        path = self.path
        if self.cut_from != start:
            self.cut_digest = hashlib.sha256()
        decoder = codecs.getincrementaldecoder("utf-8")()
        handle.seek(start)
        self.line_start = start
        self.meter = fast_scan.RowMeter(start, self.max_bytes)
        offset, lines, state, last = start, 0, FIELD_START, b"\n"
        while block := handle.read(SCAN_BLOCK):
            nul = block.find(b"\x00")
            if nul >= 0:
                raise refuse(path, f"not a text file (NUL byte at byte {offset + nul})")
            try:
                if not block.isascii() or decoder.getstate()[0]:  # ASCII is UTF-8 as it is
                    decoder.decode(block)
            except UnicodeDecodeError as exc:
                raise refuse(path, f"not UTF-8 (bad byte near byte {offset + exc.start})") from None
            lines += block.count(b"\n")
            fast = self.meter.block(block, offset, state)
            state = quote_state(block, 0, len(block), state, BYTE_MARKS) if fast is None else fast
            self.quotes = self.quotes or block.find(b'"') >= 0
            self.digest.update(block)
            if self.cut_digest is not self.digest and offset + len(block) > self.cut_from:
                self.cut_digest.update(block[max(0, self.cut_from - offset) :])
            self._measure_lines(block, offset)
            offset += len(block)
            last = block[-1:]
        self.meter.end(offset)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise refuse(path, "not UTF-8 (the file ends inside a character)") from None
        if state == IN_QUOTES:
            raise refuse(
                path,
                'unbalanced quotes: a quoted field (opened by a " at the start of '
                "a field) is never closed",
            )
        if offset - self.line_start > self.max_bytes:  # the last line, without a line ending
            raise RowTooLong(self.line_start, self.max_bytes)
        self.offset = offset
        self.lines = lines + (0 if last == b"\n" else 1)

    def _measure_lines(self, block: bytes, offset: int) -> None:
        """Refuse a line longer than `max_bytes`: a few C-level searches a block, as each
        search jumps to the last line ending within `max_bytes` of the current line's start."""
        pos = 0
        while True:
            window_end = self.line_start + self.max_bytes - offset  # in `block`'s indexes
            if window_end >= len(block):
                newline = block.rfind(b"\n", pos)
                if newline >= 0:
                    self.line_start = offset + newline + 1
                return
            newline = block.rfind(b"\n", pos, max(window_end, 0))
            if newline < 0:
                raise RowTooLong(self.line_start, self.max_bytes)
            self.line_start = offset + newline + 1
            pos = newline + 1


def _measure_rows(handle: BinaryIO, start: int, size: int, max_bytes: int) -> None:
    """Refuse a row (lines joined by quoted fields) longer than `max_bytes`.

    From each row boundary, the regex that crosses whole rows (`quote_state`'s) jumps to the
    last boundary it reaches within `max_bytes`; where it reaches none, `last_boundary` walks
    the lines. No boundary within `max_bytes` of one is exactly a row no chunk can hold, as
    when the job cuts it (`_Cutter`). About one regex pass over the body; memory: a block and
    the unfinished row carried over from the one before.

    Raises:
        RowTooLong: the first such row.
    """
    rows = BYTE_MARKS.whole_rows
    handle.seek(start)
    base, buf, eof = start, b"", False  # `buf` holds the bytes from `base`, a row boundary
    while not eof:
        more = handle.read(min(SCAN_BLOCK, size - base - len(buf)))
        eof = not more
        buf = buf + more if buf else more
        pos = 0
        while pos < len(buf):
            end = min(pos + max_bytes, len(buf))
            found = rows.match(buf, pos, end)
            reached = found.end() if found is not None else pos
            if reached == pos:
                reached = pos + last_boundary(buf[pos:end], end - pos)
            if reached > pos:
                pos = reached
            elif end - pos == max_bytes and (not eof or len(buf) - pos > max_bytes):
                raise RowTooLong(base + pos, max_bytes)
            else:
                break  # an unfinished row: more bytes come, or it is the last one
        base, buf = base + pos, buf[pos:]
    if len(buf) > max_bytes:
        raise RowTooLong(base, max_bytes)


def _line_at(handle: BinaryIO, body_start: int, offset: int) -> int:
    """The line number (the header is line 1) of the row starting at byte `offset`."""
    lines, pos = 1, body_start
    while pos < offset:
        block = os.pread(handle.fileno(), min(SCAN_BLOCK, offset - pos), pos)
        if not block:
            break
        lines += block.count(b"\n")
        pos += len(block)
    return lines + 1


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
