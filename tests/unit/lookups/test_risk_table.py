"""The risk table format: ranges, whitespace variants, and every refusal named by line."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.contract.errors import ErrorCode
from worker.lookups.risk_table import (
    MAX_LINES,
    RiskTableError,
    Rule,
    expand,
    parse_rules,
    parse_text,
    render,
)


def test_contract_example_is_parsed() -> None:
    rules = parse_text("1000 - 1310,C\n1315,B\n9170 - 9240,A\n")
    assert rules == [Rule(1000, 1310, "C", 1), Rule(1315, 1315, "B", 2), Rule(9170, 9240, "A", 3)]


@pytest.mark.parametrize(
    "line",
    ["1000-1310,C", "1000 -1310 ,C", " 1000 - 1310 , C ", "1000\t-\t1310,\tC", "1000 - 1310,C\r"],
)
def test_whitespace_variants_are_accepted(line: str) -> None:
    assert parse_rules([line]) == [Rule(1000, 1310, "C", 1)]


def test_bom_crlf_and_blank_lines_are_accepted() -> None:
    text = "\ufeff1000 - 1002,C\r\n\r\n   \r\n1315,B\r\n"
    rules = parse_text(text)
    assert [(r.first, r.last, r.risk_factor) for r in rules] == [
        (1000, 1002, "C"),
        (1315, 1315, "B"),
    ]


def test_every_integer_in_a_range_gets_the_factor() -> None:
    assert expand(parse_text("1000 - 1003,C\n1005,A\n")) == [
        (1000, "C"),
        (1001, "C"),
        (1002, "C"),
        (1003, "C"),
        (1005, "A"),
    ]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("1000,C\n999,A\n", "line 2: zipcode 999 outside"),
        ("1000 - 10000,C\n", "line 1: zipcode 10000 outside"),
        ("1310 - 1000,C\n", "line 1: reversed range 1310 - 1000"),
        ("1000,D\n", "line 1: unknown risk factor 'D'"),
        ("1000,c\n", "line 1: unknown risk factor 'c'"),
        ("1000\n", "line 1: expected"),
        ("1000,C,extra\n", "line 1: expected"),
        ("abc,C\n", "line 1: expected"),
        ("1000 - 1010,C\n1005,B\n", "line 2: 1005-1005 overlaps line 1: 1000-1010"),
        ("1000 - 5000,C\n2000 - 2100,A\n3000,B\n", "line 3: 3000-3000 overlaps line 1"),
        ("1000,C\n1000,C\n", "overlaps"),
        ("\n\n", "no rules"),
        ("9" * 5000 + ",A\n", "line 1: longer than 1000 characters"),  # int() would refuse it
        ("9" * 990 + ",A\n", "line 1: zipcode of 990 digits outside"),
        ("1000 - " + "0" * 900 + "1001,B\n", "line 1: zipcode of 904 digits outside"),
        (
            "1000," + "C" * 900 + "\n",
            "line 1: unknown risk factor '" + "C" * 36 + "...",
        ),
        (" " * 1001 + "\n1000,C\n", "line 1: longer than 1000 characters"),
        ("100000000,A\n", "line 1: zipcode 100000000 outside"),  # 9 digits: still a number
        ("1000,C\n١٠٠١,A\n", "line 2: expected"),  # digits, but not ASCII ones
    ],
)
def test_bad_tables_are_refused_naming_the_line(text: str, fragment: str) -> None:
    with pytest.raises(RiskTableError) as caught:
        parse_text(text)
    assert caught.value.code is ErrorCode.BAD_INPUT_FILE
    assert fragment in caught.value.message


def test_every_problem_is_reported_not_just_the_first() -> None:
    with pytest.raises(RiskTableError) as caught:
        parse_text("1000,X\nfoo\n1200 - 1100,A\n")
    assert [p.split(":")[0] for p in caught.value.problems] == ["line 1", "line 2", "line 3"]


def test_a_huge_number_of_problems_is_summarised() -> None:
    with pytest.raises(RiskTableError) as caught:
        parse_text("bad\n" * 500)
    assert len(caught.value.problems) == 500
    assert "and 480 more" in caught.value.message


@st.composite
def tables(draw: st.DrawFn) -> list[Rule]:
    """Non-overlapping rules over 1000..9999, drawn as sorted cut points."""
    cuts = sorted(draw(st.sets(st.integers(1000, 9999), min_size=1, max_size=40)))
    rules = []
    for index, first in enumerate(cuts):
        limit = cuts[index + 1] - 1 if index + 1 < len(cuts) else 9999
        last = draw(st.integers(first, limit))
        rules.append(Rule(first, last, draw(st.sampled_from("ABC"))))
    return rules


@given(tables())
def test_any_table_written_out_reads_back_the_same(rules: list[Rule]) -> None:
    parsed = parse_text(render(rules))
    assert [(r.first, r.last, r.risk_factor) for r in parsed] == [
        (r.first, r.last, r.risk_factor) for r in rules
    ]


@given(tables(), st.data())
def test_any_overlapping_pair_is_refused(rules: list[Rule], data: st.DataObject) -> None:
    victim = data.draw(st.sampled_from(rules))
    inside = data.draw(st.integers(victim.first, victim.last))
    extra = Rule(inside, data.draw(st.integers(inside, 9999)), "A")
    with pytest.raises(RiskTableError) as caught:
        parse_text(render([*rules, extra]))
    assert "overlaps" in caught.value.message


def test_a_bom_is_accepted_only_at_the_start() -> None:
    with pytest.raises(RiskTableError) as caught:
        parse_text("1000,C\n\ufeff1001,B\n")
    assert caught.value.problems == ["line 2: expected 'zipcode,factor' or 'first - last,factor'"]


def test_problems_are_joined_in_one_message() -> None:
    with pytest.raises(RiskTableError) as caught:
        parse_text("1000,X\nfoo\n")
    assert caught.value.message == (
        "risk table refused: line 1: unknown risk factor 'X'; "
        "line 2: expected 'zipcode,factor' or 'first - last,factor'"
    )


def test_an_empty_table_says_so() -> None:
    with pytest.raises(RiskTableError) as caught:
        parse_text("")
    assert caught.value.message == "risk table refused: the table has no rules"


def test_reading_stops_after_max_lines() -> None:
    read = 0

    def lines() -> Iterator[str]:
        nonlocal read
        while True:
            read += 1
            yield "1000,A"

    with pytest.raises(RiskTableError) as caught:
        parse_rules(lines())
    assert caught.value.message == (
        f"risk table refused: more than {MAX_LINES} lines (a table has at most 9000 rules)"
    )
    assert read == MAX_LINES + 1
