"""The zipcode risk table format: parsing, validation and writing it back out.

One rule a line, a single zipcode or an inclusive range, then the factor:

    1000 - 1310,C
    1315,B

Whitespace around `-` and `,` varies; a UTF-8 BOM, CRLF line ends and blank lines are
accepted. Every problem is reported with its line number and nothing is loaded. A file is
read in blocks, never whole; a line longer than MAX_LINE_CHARS is refused without being
held whole, and reading stops after MAX_LINES lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from worker.contract.errors import ErrorCode, ZipscoreError, echo
from worker.contract.validation import RISK_FACTORS, ZIPCODE_MAX, ZIPCODE_MIN

# ASCII digits only: `\d` would also read other scripts' digits (Arabic-Indic 1000,
# "\u0661\u0660\u0660\u0660") as a zipcode, which no other entry point accepts.
_LINE = re.compile(r"^\s*([0-9]+)\s*(?:-\s*([0-9]+)\s*)?,\s*([A-Za-z]+)\s*$")
MAX_REPORTED_PROBLEMS = 20
MAX_ZIPCODE_DIGITS = 9
MAX_LINE_CHARS = 1000  # a rule is ~15 characters; generous for any spacing
MAX_LINES = 100_000  # a valid table has at most 9,000 rules (one per zipcode)
_BLOCK_CHARS = 1 << 16
_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"  # where str.splitlines cuts


@dataclass(frozen=True, order=True)
class Rule:
    """Zipcodes `first..last` (inclusive) carry `risk_factor`; `line` is where it was read."""

    first: int
    last: int
    risk_factor: str
    line: int = 0

    def render(self) -> str:
        if self.first == self.last:
            return f"{self.first},{self.risk_factor}"
        return f"{self.first} - {self.last},{self.risk_factor}"


class RiskTableError(ZipscoreError):
    """The table was refused; `problems` lists every `line N: reason` found."""

    def __init__(self, problems: list[str]) -> None:
        shown = problems[:MAX_REPORTED_PROBLEMS]
        more = len(problems) - len(shown)
        message = "; ".join(shown) + (f"; and {more} more" if more else "")
        super().__init__(ErrorCode.BAD_INPUT_FILE, f"risk table refused: {message}")
        self.problems = problems


def _parse_line(number: int, text: str) -> Rule | str:
    match = _LINE.match(text)
    if not match:
        return f"line {number}: expected 'zipcode,factor' or 'first - last,factor'"
    for digits in filter(None, (match.group(1), match.group(2))):
        # No zipcode is that long, and int() refuses more than 4,300 digits (ValueError).
        if len(digits) > MAX_ZIPCODE_DIGITS:
            return (
                f"line {number}: zipcode of {len(digits)} digits outside "
                f"{ZIPCODE_MIN}-{ZIPCODE_MAX}"
            )
    first = int(match.group(1))
    last = int(match.group(2)) if match.group(2) is not None else first
    factor = match.group(3)
    for value in (first, last):
        if not ZIPCODE_MIN <= value <= ZIPCODE_MAX:
            return f"line {number}: zipcode {value} outside {ZIPCODE_MIN}-{ZIPCODE_MAX}"
    if last < first:
        return f"line {number}: reversed range {first} - {last}"
    if factor not in RISK_FACTORS:
        return f"line {number}: unknown risk factor {echo(factor)}"
    return Rule(first, last, factor, number)


def parse_rules(lines: Iterable[str]) -> list[Rule]:
    """Every rule of the table, sorted by first zipcode.

    Raises:
        RiskTableError: with every malformed line and every overlapping pair named.
    """
    rules: list[Rule] = []
    problems: list[str] = []
    for number, raw in enumerate(lines, start=1):
        if number > MAX_LINES:  # reading on would only hold more rules and problems
            rules_at_most = ZIPCODE_MAX - ZIPCODE_MIN + 1
            raise RiskTableError(
                [f"more than {MAX_LINES} lines (a table has at most {rules_at_most} rules)"]
            )
        text = raw.lstrip("\ufeff") if number == 1 else raw
        if len(text) > MAX_LINE_CHARS:  # before the blank check: its end was never read
            problems.append(f"line {number}: longer than {MAX_LINE_CHARS} characters")
            continue
        if not text.strip():
            continue
        parsed = _parse_line(number, text)
        if isinstance(parsed, str):
            problems.append(parsed)
        else:
            rules.append(parsed)
    rules.sort()
    reach: Rule | None = None  # the rule seen so far that ends last
    for current in rules:
        if reach is not None and current.first <= reach.last:
            problems.append(
                f"line {current.line}: {current.first}-{current.last} overlaps "
                f"line {reach.line}: {reach.first}-{reach.last}"
            )
        if reach is None or current.last > reach.last:
            reach = current
    if problems:
        raise RiskTableError(problems)
    if not rules:
        raise RiskTableError(["the table has no rules"])
    return rules


def parse_text(text: str) -> list[Rule]:
    """Parse a whole table held as text (BOM, CRLF and blank lines allowed)."""
    return parse_rules(text.splitlines())


def parse_file(path: Path) -> list[Rule]:
    """Parse the table in the UTF-8 file at `path`, reading it in blocks.

    Raises:
        RiskTableError: as `parse_rules`.
        OSError, UnicodeDecodeError: the file cannot be read as UTF-8 text.
    """
    with path.open(encoding="utf-8", newline="") as stream:
        return parse_rules(read_lines(stream))


def _rest_of_long_line(pending: str) -> tuple[str, bool]:
    """What to keep of a too-long line's unread part, and whether its end is still ahead."""
    if pending.endswith("\r"):
        return "\r", True  # the next block may hold its "\n" (one "\r\n" line end)
    return "", pending[-1:] not in _LINE_BREAKS


def read_lines(
    stream: TextIO, limit: int = MAX_LINE_CHARS, block: int = _BLOCK_CHARS
) -> Iterator[str]:
    """The lines of `stream` exactly as `str.splitlines` cuts them, in bounded memory.

    A line longer than `limit` is yielded cut to `limit + 1` characters (so it is refused
    as too long) and the rest of it is skipped, never held whole.
    """
    pending = ""
    skipping = False  # inside a line already yielded cut
    while True:
        chunk = stream.read(block)
        pieces = (pending + chunk).splitlines(keepends=True)
        # The last piece may go on in the next block (even after "\r": "\r\n" is one end).
        pending = pieces.pop() if chunk and pieces else ""
        for piece in pieces:
            if skipping:
                skipping = False  # the end of the cut line
                continue
            yield piece.splitlines()[0][: limit + 1]
        if not chunk:
            return
        if skipping:
            pending, skipping = _rest_of_long_line(pending)
        elif len(pending) > limit + 2:  # + 2: a "\r\n" it may end with
            yield pending[: limit + 1]
            pending, skipping = _rest_of_long_line(pending)


def expand(rules: Iterable[Rule]) -> list[tuple[int, str]]:
    """One `(zipcode, factor)` pair per zipcode covered by the rules, in zipcode order."""
    return [
        (zipcode, rule.risk_factor)
        for rule in sorted(rules)
        for zipcode in range(rule.first, rule.last + 1)
    ]


def render(rules: Iterable[Rule]) -> str:
    """The table as text in the canonical format, one rule a line."""
    return "".join(rule.render() + "\n" for rule in sorted(rules))
