"""The check of a batch's input before any job exists: its header and its whole body.

    with open_input(Path("in.csv")) as f:
        layout = inspect_handle(f, Path("in.csv"), "zipcode", max_bytes=MB)

The check refuses, up front, any file the job could not cut into chunks (a row longer than
a chunk may be, unbalanced quotes, bytes that are not UTF-8 text). It also records a digest
(SHA-256) of the bytes it checked, so the job can prove it scored exactly those bytes
(`InputLayout.cut_digest`).
"""

from __future__ import annotations

import csv
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from producer.batch import fast_scan
from producer.batch.cutting import MB, RowTooLong, describe_size
from producer.batch.header import BOM, MAX_HEADER_BYTES, find_column, read_header, refuse
from producer.batch.scan import BodyScan, line_at, measure_rows

DEFAULT_MAX_BYTES = 32 * MB


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
    bom, header, newline, body_start = read_header(path, head)
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
    scan = BodyScan(path, start, max_bytes)
    try:
        scan.body(handle, body_start)
        if scan.quotes:
            # A quoted field may join lines into a row longer than the limit (without
            # quotes, lines are rows and were measured above).
            found = scan.meter.first_long_row()
            if found == fast_scan.UNKNOWN:
                measure_rows(handle, body_start, scan.offset, max_bytes)
            elif found is not None:
                raise RowTooLong(found, max_bytes)
    except RowTooLong as exc:
        line = line_at(handle, body_start, exc.start)
        raise refuse(
            path,
            f"the row at line {line} is longer than {describe_size(exc.max_bytes)}, the most a "
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
        digest=scan.digest,
        cut_from=start,
        cut_digest=scan.cut_digest,
        quotes=scan.quotes,
    )
