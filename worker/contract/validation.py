"""Validation of every value that comes from outside: zipcodes, risk factors, base years,
health index months, and the flag of a health index refresh.

Both the producer (before anything is sent) and the worker (before anything is queried)
call these, so a message that skipped the client is still checked.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Final

from worker.contract.errors import ErrorCode, ZipscoreError
from worker.contract.errors import echo as _echo

ZIPCODE_MIN: Final = 1000
ZIPCODE_MAX: Final = 9999
RISK_FACTORS: Final = ("A", "B", "C")
_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")


def parse_zipcode(value: object) -> int:
    """A Belgian zipcode as an int in 1000..9999, from an int or a string of ASCII digits.

    Raises:
        ZipscoreError: ZIPCODE_NOT_VALID for anything else (bools, floats, signs, spaces inside).
    """
    if isinstance(value, bool):
        raise ZipscoreError(ErrorCode.ZIPCODE_NOT_VALID, f"not a zipcode: {_echo(value)}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.isdigit()) or len(text) > 4:
            raise ZipscoreError(ErrorCode.ZIPCODE_NOT_VALID, f"not a zipcode: {_echo(value)}")
        number = int(text)
    else:
        raise ZipscoreError(ErrorCode.ZIPCODE_NOT_VALID, f"not a zipcode: {_echo(value)}")
    if not ZIPCODE_MIN <= number <= ZIPCODE_MAX:
        raise ZipscoreError(
            ErrorCode.ZIPCODE_NOT_VALID,
            f"zipcode {_echo(number)} is outside {ZIPCODE_MIN}-{ZIPCODE_MAX}",
        )
    return number


def parse_risk_factor(value: object) -> str:
    """One of A, B, C (case-insensitive, surrounding spaces ignored).

    Raises:
        ZipscoreError: RISK_FACTOR_NOT_VALID for anything else.
    """
    if isinstance(value, str):
        text = value.strip().upper()
        if text in RISK_FACTORS:
            return text
    raise ZipscoreError(
        ErrorCode.RISK_FACTOR_NOT_VALID,
        f"risk factor must be one of {', '.join(RISK_FACTORS)}, not {_echo(value)}",
    )


def parse_base_year(value: object, supported: tuple[int, ...]) -> int:
    """A health index base year among `supported`, from an int or a string of ASCII digits.

    Raises:
        ZipscoreError: WRONG_YEAR for anything else.
    """
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        text = value.strip()
        number = int(text) if len(text) <= 4 else None
    if number is None or number not in supported:
        raise ZipscoreError(
            ErrorCode.WRONG_YEAR,
            f"base year must be one of {', '.join(map(str, supported))}, not {_echo(value)}",
        )
    return number


def parse_month(value: object) -> date:
    """A month written YYYY-MM (ASCII digits, 01-12), as the first day of that month.

    Raises:
        ZipscoreError: WRONG_YEAR (the index's code for a refused date) for anything else.
    """
    match = _MONTH.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 1:
        raise ZipscoreError(
            ErrorCode.WRONG_YEAR, f"month must be YYYY-MM, like 2021-09, not {_echo(value)}"
        )
    return date(int(match.group(1)), int(match.group(2)), 1)


def parse_if_empty(value: object) -> bool:
    """The `if_empty` flag of `index.refresh`: JSON true or false, nothing else.

    Raises:
        ZipscoreError: INDEX_UNAVAILABLE (the refresh's code for a refused message) for
            anything else, so a malformed message is not taken for a plain refresh.
    """
    return parse_refresh_flag("if_empty", value)


def parse_refresh_flag(name: str, value: object) -> bool:
    """A boolean flag of `index.refresh` (`if_empty`, `retry`): JSON true or false only.

    Raises:
        ZipscoreError: INDEX_UNAVAILABLE for anything else.
    """
    if isinstance(value, bool):
        return value
    raise ZipscoreError(
        ErrorCode.INDEX_UNAVAILABLE,
        f"index.refresh: {name} must be true or false, not {_echo(value)}",
    )
