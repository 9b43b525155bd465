"""A batch input's header row: byte-order mark, header text, line ending, zipcode column.

Only the header is parsed as CSV; the body is checked (`producer.batch.scan`) and cut
(`producer.batch.cutting`) as bytes.
"""

from __future__ import annotations

from pathlib import Path

from producer.batch.cutting import cut
from worker.contract.errors import ErrorCode, ZipscoreError, echo

BOM = b"\xef\xbb\xbf"
MAX_HEADER_BYTES = 1024 * 1024
_MAX_LISTED_COLUMNS = 12


def refuse(path: Path, reason: str) -> ZipscoreError:
    return ZipscoreError(ErrorCode.BAD_INPUT_FILE, f"{path}: {reason}")


def read_header(path: Path, head: bytes) -> tuple[bool, str, str, int]:
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
