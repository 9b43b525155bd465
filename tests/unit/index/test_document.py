"""The beSTAT document parser: the published values, every refusal, and a fuzz."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.statbel_documents import (
    FIXTURE_MONTHS,
    PUBLISHED_SEPTEMBER_2021,
    document,
    fact,
    fixture_body,
)
from worker.index.document import DocumentRefused, IndexMonth, parse_document

SUPPORTED = (1996, 2004, 2013, 2025)


def test_the_fixture_gives_the_published_september_2021_values() -> None:
    months = parse_document(fixture_body(), SUPPORTED)
    assert len(months) == FIXTURE_MONTHS
    september = {m.base_year: m.value for m in months if m.period == date(2021, 9, 1)}
    assert september == {year: Decimal(str(v)) for year, v in PUBLISHED_SEPTEMBER_2021.items()}


def test_unsupported_base_years_are_ignored_and_the_rest_sorted() -> None:
    months = parse_document(fixture_body(), (2013,))
    assert [m.period.month for m in months] == [7, 8, 9]
    assert {m.base_year for m in months} == {2013}


def test_year_may_be_missing_extra_keys_are_ignored_and_year_may_be_an_int() -> None:
    body = document(
        fact(month="September 2021", Unit="index"),
        fact(month="October", Year=2021, value=136),
    )
    assert parse_document(body, SUPPORTED) == [
        IndexMonth(2004, date(2021, 9, 1), Decimal("135.61")),
        IndexMonth(2004, date(2021, 10, 1), Decimal(136)),
    ]


def test_a_repeated_identical_month_is_one_month() -> None:
    assert len(parse_document(document(fact(), fact()), SUPPORTED)) == 1


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>maintenance</html>", "not JSON"),
        (b"", "not JSON"),
        (b"\xff\xfe\x00junk", "not JSON"),
        (b"[" * 100_000, "not JSON"),  # nesting deep enough to exhaust the recursion limit
        (b'{"facts": [' + b"9" * 5000 + b"]}", "not JSON"),  # an int too long to convert
        (b'{"facts": [1e-0' + b"9" * 5000 + b"]}", "not JSON"),  # an exponent Decimal cannot hold
        (b"[1, 2]", "document"),
        (b'{"facts": {"a": 1}}', "facts"),
        (b'{"facts": "none"}', "facts"),
        (b'{"data": []}', "facts"),
        (b'{"facts": []}', "no month"),
        (document({"Base year": "2004 = 100", "Month": "May 2021"}), "Health index"),
        (document({"Health index": 1.0, "Month": "May 2021"}), "Base year"),
        (document({"Base year": "2004 = 100", "Health index": 1.0}), "Month"),
        (document(fact(value="135.61")), "JSON number"),
        (document(fact(value=True)), "JSON number"),
        (document(fact(value=None)), "JSON number"),
        (document(fact(value=-1.5)), "greater than 0"),
        (document(fact(value=0)), "greater than 0"),
        (document(fact(value=1e300)), "less than or equal"),
        (
            b'{"facts": [{"Base year": "2004 = 100", "Health index": 1e999, "Month": "May 2021"}]}',
            "less than or equal",
        ),
        (
            b'{"facts": [{"Base year": "2004 = 100", "Health index": NaN, "Month": "May 2021"}]}',
            "not JSON",
        ),
        (
            b'{"facts": [{"Base year": "2004 = 100", "Health index": -Infinity, "Month": "May"}]}',
            "not JSON",
        ),
        (document(fact(value=1e-30)), "rounds to zero"),
        (document({"Base year": 2004, "Health index": 1.0, "Month": "May 2021"}), "2004 = 100"),
        (document(fact(base_year=2004).copy() | {"Base year": "2004 = 200"}), "2004 = 100"),
        (document(fact(month="Septober 2021")), "English month"),
        (document(fact(month="September")), "no year"),
        (document(fact(month="September 2021", Year="2020")), "says 2020"),
        (document(fact(month="September 1066")), "outside"),
        (document(fact(month=["September", 2021])), "English month"),
        (document(fact(Year="twenty")), "expected a year"),
        (document(fact(value=135.61), fact(value=140.0)), "two values"),
        (document(fact(base_year=1988)), "no month for the supported"),
        (json.dumps({"facts": [fact()] * 100_001}).encode(), "at most 100000"),
    ],
)
def test_documents_not_of_the_shape_are_refused_whole(body: bytes, reason: str) -> None:
    with pytest.raises(DocumentRefused) as caught:
        parse_document(body, SUPPORTED)
    assert reason in str(caught.value)
    assert len(str(caught.value)) < 1000


def test_one_bad_fact_among_good_ones_refuses_the_document() -> None:
    body = document(fact(month="August 2021"), fact(value=-3))
    with pytest.raises(DocumentRefused, match=r"facts\.1\.Health index"):
        parse_document(body, SUPPORTED)


NOVEMBER_2026 = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)


def test_the_issues_month_of_2150_is_refused_with_the_whole_document() -> None:
    body = document(
        fact(month="October 2026"),
        {"Base year": "2004 = 100", "Health index": 99.99, "Month": "January 2150"},
    )
    with pytest.raises(DocumentRefused) as caught:
        parse_document(body, SUPPORTED, now=NOVEMBER_2026)
    assert str(caught.value) == (
        "facts.1: 2150-01 of base 2004 is after the current month (2026-11 in Europe/Brussels)"
    )


@pytest.mark.parametrize(
    "labels",
    [{"month": "December 2026"}, {"month": "December", "Year": "2026"}, {"month": "May 2027"}],
)
def test_next_month_is_already_the_future(labels: dict[str, Any]) -> None:
    body = document(fact(**labels))
    with pytest.raises(DocumentRefused, match="after the current month"):
        parse_document(body, SUPPORTED, now=NOVEMBER_2026)


def test_the_current_month_is_accepted() -> None:
    months = parse_document(document(fact(month="November 2026")), SUPPORTED, now=NOVEMBER_2026)
    assert [m.period for m in months] == [date(2026, 11, 1)]


@pytest.mark.parametrize(
    ("now", "accepted"),
    [
        (datetime(2026, 11, 30, 22, 59, tzinfo=UTC), False),  # 23:59 in Brussels: November
        (datetime(2026, 11, 30, 23, 0, tzinfo=UTC), True),  # midnight in Brussels: December
    ],
)
def test_the_current_month_is_brussels_month(now: datetime, accepted: bool) -> None:
    body = document(fact(month="December 2026"))
    if accepted:
        assert parse_document(body, SUPPORTED, now=now)[0].period == date(2026, 12, 1)
    else:
        with pytest.raises(DocumentRefused, match=r"after the current month \(2026-11 "):
            parse_document(body, SUPPORTED, now=now)


def test_a_future_month_of_an_unsupported_base_year_is_ignored_like_the_rest_of_it() -> None:
    body = document(fact(), fact(base_year=1988, month="January 2150"))
    assert len(parse_document(body, SUPPORTED, now=NOVEMBER_2026)) == 1


def test_without_a_time_the_clock_decides() -> None:
    far = document(fact(month="January 2150"))
    with pytest.raises(DocumentRefused, match="after the current month"):
        parse_document(far, SUPPORTED)


def test_refusals_never_echo_a_huge_input() -> None:
    body = document(fact(month="x" * 100_000))
    with pytest.raises(DocumentRefused) as caught:
        parse_document(body, SUPPORTED)
    assert len(str(caught.value)) < 300


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
FACT_VALUES = st.fixed_dictionaries(
    {},
    optional={
        "Base year": st.sampled_from(["2004 = 100", "2013 = 100", "2004", "= 100"]) | JSON,
        "Health index": st.floats() | st.integers() | JSON,
        "Month": st.sampled_from(["September 2021", "May", "Maybe 2021", "May 99999"]) | JSON,
        "Year": st.sampled_from(["2021", 2021, "20x1"]) | JSON,
    },
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(JSON, st.fixed_dictionaries({"facts": st.lists(FACT_VALUES, max_size=5)})))
def test_any_json_is_parsed_or_refused_with_a_reason_never_a_crash(raw: object) -> None:
    body = json.dumps(raw).encode()
    try:
        months = parse_document(body, SUPPORTED)
    except DocumentRefused as exc:
        assert str(exc)
    else:
        assert months
        assert all(m.value > 0 and m.period.day == 1 for m in months)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_are_parsed_or_refused(body: bytes) -> None:
    with contextlib.suppress(DocumentRefused):
        parse_document(body, SUPPORTED)


def test_facts_of_unsupported_base_years_are_ignored_whatever_they_hold() -> None:
    junk = {"Base year": "1988 = 100", "Health index": "n/a", "Month": "Smarch 2021"}
    months = parse_document(document(fact(), junk), SUPPORTED)
    assert [(m.base_year, m.value) for m in months] == [(2004, Decimal("135.61"))]


def test_float_artefacts_round_instead_of_refusing_the_document() -> None:
    months = parse_document(document(fact(value=112.29000000000001)), SUPPORTED)
    assert months[0].value == Decimal("112.29")
