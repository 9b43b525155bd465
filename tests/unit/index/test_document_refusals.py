"""Refusals of a Statbel document name the fact, the field and the offending value."""

from __future__ import annotations

import json
from typing import Any

import pytest

from worker.index.document import DocumentRefused, parse_document

SUPPORTED = (1996, 2004, 2013, 2025)


def fact(**changes: Any) -> dict[str, Any]:
    base = {"Base year": "2004 = 100", "Health index": 135.61, "Month": "September 2021"}
    return {**base, "Year": "2021", **changes}


def body(*facts: dict[str, Any]) -> bytes:
    return json.dumps({"facts": list(facts)}).encode()


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"{nope", "not JSON: JSONDecodeError"),
        (
            body(fact(**{"Base year": "2004"})),
            "not a health index document: facts.0.Base year: Value error, "
            "expected text like '2004 = 100', got '2004'",
        ),
        (
            body(fact(**{"Health index": "135.61"})),
            "not a health index document: facts.0.Health index: Value error, "
            "expected a JSON number, got '135.61'",
        ),
        (
            body(fact(Year="20x1")),
            "not a health index document: facts.0.Year: Value error, expected a year, got '20x1'",
        ),
        (
            body(fact(Month="Septober 2021")),
            "not a health index document: facts.0.Month: Value error, "
            "expected an English month like 'September 2021', got 'Septober 2021'",
        ),
        (
            body(fact(), fact(**{"Health index": 136.0})),
            "facts.1: 2021-09 of base 2004 appears with two values",
        ),
        (
            body(fact(**{"Base year": "1988 = 100"})),
            "no month for the supported base years (1996, 2004, 2013, 2025)",
        ),
    ],
)
def test_refusals_say_exactly_what_is_wrong(document: bytes, message: str) -> None:
    with pytest.raises(DocumentRefused) as caught:
        parse_document(document, SUPPORTED)
    assert str(caught.value) == message
