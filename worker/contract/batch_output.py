"""What a scored batch row looks like: the three output columns and their statuses.

Each output row is the input row's own text, byte for byte, followed by
`,<risk_factor>,<status>,<error>`; the producer writes the header, workers the rows.
"""

from __future__ import annotations

from dataclasses import dataclass

STATUS_OK = "ok"
STATUS_UNKNOWN = "unknown"
STATUS_INVALID = "invalid"
OUTPUT_COLUMNS = ("risk_factor", "status", "error")


@dataclass(frozen=True)
class ChunkResult:
    """The scored rows of one chunk and what they came to."""

    text: str
    rows: int
    ok: int
    unknown: int
    invalid: int


@dataclass(frozen=True)
class ScoredBytes:
    """A chunk's scored rows as bytes (the vectorised path's `ChunkResult`)."""

    data: bytes
    rows: int
    ok: int
    unknown: int
    invalid: int


def output_header(header_row: str) -> str:
    """The output's header row: the input's header text, then the three new columns."""
    return header_row + "," + ",".join(OUTPUT_COLUMNS)
