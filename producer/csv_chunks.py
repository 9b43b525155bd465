"""Reading a batch's input CSV as bytes: its header, a checking pre-scan, and chunks of rows.

    layout = inspect_input(Path("in.csv"), "zipcode")      # BAD_INPUT_FILE if it cannot be
    with open("in.csv", "rb") as f:
        for chunk in iter_chunks(f, layout.body_start, 0, lines=20_000):
            ...   # chunk.index, chunk.start, chunk.end, chunk.data (whole rows, as bytes)

Only the header is parsed as CSV here: the body is cut into chunks of `lines` lines on row
boundaries without parsing fields (workers parse rows). A line ending is a row boundary
unless it is inside a quoted field, so a line break inside a quoted field never splits a row.
Quoting is RFC 4180's (`worker.batch.quote_state`): a `"` opens a quoted field only at the
start of a field; inside one `""` is a quote and a lone `"` closes it; a `"` anywhere else
(`1,5" disk,9000`) is literal text and never moves a row boundary. Text without `"` needs no
state machine: one C-level search tells it has none.

Chunks are a pure function of the input bytes, the start offset and `lines`: cutting again
from a recorded offset (a resumed job) gives the same chunks, with the same indexes.
"""

from __future__ import annotations

import codecs
import csv
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from worker.batch import BYTE_MARKS, FIELD_START, IN_QUOTES, quote_state
from worker.errors import ErrorCode, ZipscoreError, echo

BOM = b"\xef\xbb\xbf"
SCAN_BLOCK = 8 * 1024 * 1024
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

    @property
    def fingerprint(self) -> str:
        """Size and modification time: a resumed job refuses an input that changed."""
        return f"{self.size}:{self.mtime_ns}"


@dataclass(frozen=True)
class Chunk:
    """Whole rows of the body: bytes `start`..`end` of the file (UTF-8, checked up front)."""

    index: int
    start: int
    end: int
    data: bytes


def refuse(path: Path, reason: str) -> ZipscoreError:
    return ZipscoreError(ErrorCode.BAD_INPUT_FILE, f"{path}: {reason}")


def cut(buf: bytes, lines: int) -> int | None:
    """Where `lines` whole lines of `buf` end on a row boundary, or None if `buf` is short.

    `buf` starts at a row boundary. The cut is extended past further line endings while a
    quoted field is open (RFC 4180 quoting, see the module docstring).
    """
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


def inspect_input(path: Path, zipcode_column: str) -> InputLayout:
    """Read the header and check the whole body before any job exists.

    One pass over the file in fixed-size blocks (memory stays flat): UTF-8 throughout, no
    NUL byte, every quoted field closed (a `"` that opens one at a field's start; a stray
    `"` inside a field is text); it also counts line endings for the progress bar.

    Raises:
        ZipscoreError: BAD_INPUT_FILE naming what is wrong.
    """
    try:
        stat = path.stat()
        handle = path.open("rb")
    except OSError as exc:
        raise refuse(path, f"cannot read it ({exc.strerror or type(exc).__name__})") from None
    with handle:
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
        lines = _scan_body(path, handle, body_start)
    return InputLayout(
        path=path,
        size=stat.st_size,
        mtime_ns=stat.st_mtime_ns,
        bom=bom,
        header=header,
        columns=len(fields),
        column=column,
        newline=newline,
        body_start=body_start,
        lines=lines,
    )


def _scan_body(path: Path, handle: BinaryIO, start: int) -> int:
    decoder = codecs.getincrementaldecoder("utf-8")()
    handle.seek(start)
    offset, lines, state, last = start, 0, FIELD_START, b"\n"
    while block := handle.read(SCAN_BLOCK):
        nul = block.find(b"\x00")
        if nul >= 0:
            raise refuse(path, f"not a text file (NUL byte at byte {offset + nul})")
        try:
            decoder.decode(block)
        except UnicodeDecodeError as exc:
            raise refuse(path, f"not UTF-8 (bad byte near byte {offset + exc.start})") from None
        lines += block.count(b"\n")
        state = quote_state(block, 0, len(block), state, BYTE_MARKS)
        offset += len(block)
        last = block[-1:]
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
    return lines + (0 if last == b"\n" else 1)


def iter_chunks(
    handle: BinaryIO, start: int, index: int, *, lines: int, max_bytes: int
) -> Iterator[Chunk]:
    """The chunks of the body from byte `start` (a chunk boundary), numbered from `index`.

    Holds at most one chunk (and one read block) in memory.

    Raises:
        ZipscoreError: BAD_INPUT_FILE if one row outgrows `max_bytes` (a quoted field
            holding that many bytes of line breaks and text).
    """
    handle.seek(start)
    buf = b""
    read_size = 1024 * 1024
    eof = False
    while True:
        end = cut(buf, lines)
        while end is None and not eof:
            if len(buf) > max_bytes:
                raise ZipscoreError(
                    ErrorCode.BAD_INPUT_FILE,
                    f"a chunk of {lines} lines from byte {start} exceeds {max_bytes} bytes "
                    "(one row, a quoted field with line breaks, that large?)",
                )
            more = handle.read(read_size)
            if more:
                buf += more
            else:
                eof = True
            end = cut(buf, lines)
        if end is None:
            end = len(buf)
        if end == 0:
            return
        data, buf = buf[:end], buf[end:]
        # Read about one chunk ahead next time, so a chunk is found in one or two reads.
        read_size = max(read_size, end)
        yield Chunk(index, start, start + end, data)
        start += end
        index += 1


def read_chunk(handle: BinaryIO, start: int, end: int) -> bytes:
    """A chunk's bytes again (to resubmit it), read from its recorded byte range.

    Reads with pread, so the position of a running `iter_chunks` on the same file is kept.
    """
    return os.pread(handle.fileno(), end - start, start)
