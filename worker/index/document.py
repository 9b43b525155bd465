"""The health index document from Statbel's beSTAT, validated before anything is stored.

A document is `{"facts": [{"Base year": "2004 = 100", "Health index": 135.61,
"Month": "September 2021", "Year": "2021"}, ...]}`: the base year is text, the value a JSON
number, the month an English month name with its year (`"Year"` may be missing; other keys
are ignored). A document that is not of that shape is refused as a whole (`DocumentRefused`),
so a refresh writes all of it or nothing; facts of unsupported base years are dropped. A month
after the current month in Brussels cannot have been published yet: such a document is
refused too (stored, a month from 2150 would be the latest month for good).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from worker.contract.errors import echo

MAX_INDEX = Decimal(10_000)  # base-year indices live around 100-300; far beyond is garbage
MAX_FACTS = 100_000
PRECISION = Decimal("0.000001")
PRECISION_EXPONENT = -6  # of PRECISION: values with 6 decimals or fewer are kept as sent
MIN_YEAR, MAX_YEAR = 1900, 2200
MAX_REPORTED_PROBLEMS = 5
TIMEZONE = "Europe/Brussels"  # Statbel's, and the schedule's
_BASE_YEAR = re.compile(r"^\s*(\d{4})\s*=\s*100\s*$")
_MONTH = re.compile(r"^\s*([A-Za-z]+)(?:\s+(\d{4}))?\s*$")
MONTHS = {
    name: number
    for number, name in enumerate(
        (
            "january",
            "february",
            "march",
            "april",
            "may",
            "june",
            "july",
            "august",
            "september",
            "october",
            "november",
            "december",
        ),
        start=1,
    )
}


class DocumentRefused(ValueError):
    """The source answered something that is not a health index document; nothing is stored."""


def _base_year(value: object) -> int:
    match = _BASE_YEAR.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"expected text like '2004 = 100', got {echo(value)}")
    return int(match.group(1))


def _number(value: object) -> Decimal:
    # JSON numbers arrive as int or Decimal (see `parse_document`); text, bools are refused.
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise ValueError(f"expected a JSON number, got {echo(value)}")
    return Decimal(value)


def _to_precision(value: Decimal) -> Decimal:
    # Float artefacts such as 112.29000000000001 round to the stored precision instead of
    # refusing a whole document.
    exponent = value.as_tuple().exponent
    if not isinstance(exponent, int) or exponent >= PRECISION_EXPONENT:
        return value
    rounded = value.quantize(PRECISION)
    if not rounded:
        raise ValueError(f"{echo(value)} rounds to zero")
    return rounded


def _year(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip()[:9])
    raise ValueError(f"expected a year, got {echo(value)}")


def _month(value: object) -> tuple[int, int | None]:
    match = _MONTH.match(value) if isinstance(value, str) else None
    if match is None or match.group(1).lower() not in MONTHS:
        raise ValueError(f"expected an English month like 'September 2021', got {echo(value)}")
    return MONTHS[match.group(1).lower()], int(match.group(2)) if match.group(2) else None


class Fact(BaseModel):
    """One published month of one base year, as beSTAT labels it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    base_year: Annotated[int, BeforeValidator(_base_year)] = Field(alias="Base year")
    value: Annotated[
        Decimal,
        BeforeValidator(_number),
        Field(gt=0, le=MAX_INDEX, allow_inf_nan=False),
        AfterValidator(_to_precision),
    ] = Field(alias="Health index")
    month: Annotated[tuple[int, int | None], BeforeValidator(_month)] = Field(alias="Month")
    year: Annotated[int | None, BeforeValidator(_year)] = Field(default=None, alias="Year")

    @model_validator(mode="after")
    def _one_plausible_year(self) -> Fact:
        month_year = self.month[1]
        if month_year is None and self.year is None:
            raise ValueError("the month has no year and there is no 'Year'")
        if month_year is not None and self.year is not None and month_year != self.year:
            raise ValueError(f"'Month' says {month_year} but 'Year' says {self.year}")
        year = month_year if month_year is not None else self.year
        if not MIN_YEAR <= (year or 0) <= MAX_YEAR:
            raise ValueError(f"year {echo(year)} is outside {MIN_YEAR}-{MAX_YEAR}")
        return self

    @property
    def period(self) -> date:
        """The first day of the month the fact is about."""
        month, month_year = self.month
        year = month_year if month_year is not None else self.year
        assert year is not None  # checked by the validator
        return date(year, month, 1)


class Document(BaseModel):
    """The whole beSTAT answer: a list of facts (other top-level keys are ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    facts: list[Fact | None] = Field(max_length=MAX_FACTS)


@dataclass(frozen=True, order=True)
class IndexMonth:
    """The health index of one month for one base year."""

    base_year: int
    period: date
    value: Decimal


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _describe(error: ValidationError) -> str:
    problems = [
        f"{'.'.join(str(part) for part in item['loc']) or 'document'}: {item['msg']}"
        for item in error.errors(include_input=False, include_url=False)
    ]
    shown = problems[:MAX_REPORTED_PROBLEMS]
    more = len(problems) - len(shown)
    return "; ".join(shown) + (f"; and {more} more" if more else "")


def _unsupported(fact: object, supported: tuple[int, ...]) -> bool:
    """A fact that names a base year zipscore does not serve: ignored, whatever else it holds."""
    label = fact.get("Base year") if isinstance(fact, dict) else None
    match = _BASE_YEAR.match(label) if isinstance(label, str) else None
    return match is not None and int(match.group(1)) not in supported


def _without_unsupported(raw: object, supported: tuple[int, ...]) -> object:
    """The document with unsupported facts blanked (None), keeping every fact's index."""
    if isinstance(raw, dict) and isinstance(raw.get("facts"), list):
        facts = [None if _unsupported(fact, supported) else fact for fact in raw["facts"]]
        return {**raw, "facts": facts}
    return raw


def current_month(now: datetime | None = None) -> date:
    """The first day of the current month in Brussels (of `now`, an aware datetime)."""
    today = (now or datetime.now(ZoneInfo(TIMEZONE))).astimezone(ZoneInfo(TIMEZONE)).date()
    return today.replace(day=1)


def parse_document(
    body: bytes, supported: tuple[int, ...], *, now: datetime | None = None
) -> list[IndexMonth]:
    """Every month of the supported base years in `body`, sorted by base year and period.

    `now` (default: the clock) decides which months are in the future.

    Raises:
        DocumentRefused: the body is not JSON, not of the documented shape, holds a value
            out of range or a month after the current one in Brussels, contradicts itself
            (one month with two values), or holds no month of a supported base year.
    """
    this_month = current_month(now)
    try:
        raw = json.loads(body, parse_float=Decimal, parse_constant=_refuse_constant)
    except (ValueError, InvalidOperation, RecursionError) as exc:
        # ValueError: JSONDecodeError, bad UTF-8, ints over 4,300 digits; InvalidOperation
        # (an ArithmeticError): an exponent Decimal cannot hold, as in 1e-0999...9
        raise DocumentRefused(f"not JSON: {type(exc).__name__}") from None
    try:
        document = Document.model_validate(_without_unsupported(raw, supported))
        found: dict[tuple[int, date], Decimal] = {}
        for number, fact in enumerate(document.facts):
            if fact is None:
                continue
            key = (fact.base_year, fact.period)
            # No clock-skew allowance: Statbel publishes a month near its end, so a month
            # that has not begun is never real, and a month of slack would let in exactly
            # the mistake this refuses (next month's typo).
            if fact.period > this_month:
                raise DocumentRefused(
                    f"facts.{number}: {fact.period:%Y-%m} of base {fact.base_year} is after "
                    f"the current month ({this_month:%Y-%m} in {TIMEZONE})"
                )
            if key in found and found[key] != fact.value:
                raise DocumentRefused(
                    f"facts.{number}: {key[1]:%Y-%m} of base {key[0]} appears with two values"
                )
            found[key] = fact.value
    except ValidationError as exc:
        raise DocumentRefused(f"not a health index document: {_describe(exc)}") from None
    months = sorted(
        IndexMonth(base_year, period, value)
        for (base_year, period), value in found.items()
        if base_year in supported
    )
    if not months:
        raise DocumentRefused(
            f"no month for the supported base years ({', '.join(map(str, supported))})"
        )
    return months
