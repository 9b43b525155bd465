"""The check of a batch input's body: block by block, validated, counted and digested,
and every row measured against the most a chunk may hold.

Without quotes a row is a line, and the check measures every line (a few C-level searches
a block); in a file with quotes it also measures every row (`measure_rows`: no row boundary
within `max_bytes` of one is exactly where the cut would fail).
"""

from __future__ import annotations

import codecs
import contextlib
import os
from pathlib import Path
from typing import BinaryIO

import numpy as np

from producer.batch import fast_scan
from producer.batch.cutting import RowTooLong, last_boundary
from producer.batch.digest import BackgroundDigest
from producer.batch.header import refuse
from worker.contract.csv_rows import BYTE_MARKS, FIELD_START, IN_QUOTES, quote_state

SCAN_BLOCK = 8 * 1024 * 1024
LF = 10


class BodyScan:
    """The check of the body: block by block, validated, counted, digested, and its lines'
    lengths measured (a line longer than a chunk may be is a row no chunk can hold)."""

    def __init__(self, path: Path, cut_from: int, max_bytes: int) -> None:
        self.path = path
        self.cut_from = cut_from
        self.max_bytes = max_bytes
        self.digest = ""  # SHA-256 of the body, once scanned
        self.cut_digest = ""  # of bytes `cut_from`.. (the body's, unless a resume cuts later)
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
        with contextlib.ExitStack() as threads:
            whole = threads.enter_context(BackgroundDigest())
            cut = whole
            if self.cut_from != start:
                cut = threads.enter_context(BackgroundDigest())
            self._body(handle, start, whole, cut)
            self.digest, self.cut_digest = whole.hexdigest(), cut.hexdigest()

    def _body(
        self, handle: BinaryIO, start: int, whole: BackgroundDigest, cut: BackgroundDigest
    ) -> None:
        path = self.path
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
            lines += int(np.count_nonzero(np.frombuffer(block, dtype=np.uint8) == LF))
            fast = self.meter.block(block, offset, state)
            state = quote_state(block, 0, len(block), state, BYTE_MARKS) if fast is None else fast
            self.quotes = self.quotes or block.find(b'"') >= 0
            whole.update(block)
            if cut is not whole and offset + len(block) > self.cut_from:
                cut.update(block[max(0, self.cut_from - offset) :])
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


def measure_rows(handle: BinaryIO, start: int, size: int, max_bytes: int) -> None:
    """Refuse a row (lines joined by quoted fields) longer than `max_bytes`.

    From each row boundary, the regex that crosses whole rows (`quote_state`'s) jumps to the
    last boundary it reaches within `max_bytes`; where it reaches none, `last_boundary` walks
    the lines. No boundary within `max_bytes` of one is exactly a row no chunk can hold, as
    when the job cuts it (`iter_chunks`). About one regex pass over the body; memory: a block and
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


def line_at(handle: BinaryIO, body_start: int, offset: int) -> int:
    """The line number (the header is line 1) of the row starting at byte `offset`."""
    lines, pos = 1, body_start
    while pos < offset:
        block = os.pread(handle.fileno(), min(SCAN_BLOCK, offset - pos), pos)
        if not block:
            break
        lines += block.count(b"\n")
        pos += len(block)
    return lines + 1
