"""Unit and property tests for the practice exercises in ``exercises/``.

Run from the repository root: ``python -m pytest tests/unit/exercises/test_exercises.py``.
"""

import subprocess
import sys
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exercises.exercise_1_1 import common_elements
from exercises.exercise_1_2 import (
    SAMPLE_CUSTOMERS,
    SAMPLE_EXPECTED,
    Customer,
    group_by_age,
    group_by_age_groupby,
)
from tests.support.paths import ROOT as REPO_ROOT

Grouper = Callable[[list[Customer]], dict[int, list[str]]]


GROUPERS = pytest.mark.parametrize("group", [group_by_age, group_by_age_groupby])

customers_strategy = st.lists(
    st.builds(
        Customer,
        name=st.text(alphabet="abcde", min_size=1, max_size=3),
        email=st.just("someone@example.com"),
        age=st.integers(min_value=0, max_value=120),
    )
)


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        ([1, 5, 70, 24, 155], [17, 24, 25, 24, 68, 155], [24, 155]),
        ([5, 109, 49, 3], [63, 1, 44, 9], []),
        ([1, 1, 1, 1, 1], [2, 2, 2, 2, 2, 2, 1], [1]),
        ([], [], []),
        ([], [1, 2], []),
        ([1, 2], [], []),
        ([3, 4], [4, 4, 4, 3, 3], [3, 4]),
        ([9, 2, 7, 2, 9], [2, 7, 9], [9, 2, 7]),
        ([-3, 0, -1, 5], [5, -1, -3, -7], [-3, -1, 5]),
    ],
    ids=[
        "book-example-1",
        "book-example-2-disjoint",
        "book-example-3-repeats",
        "both-empty",
        "first-empty",
        "second-empty",
        "duplicates-in-second",
        "order-of-first-kept",
        "negative-numbers",
    ],
)
def test_common_elements(first: list[int], second: list[int], expected: list[int]) -> None:
    """Given two lists, when intersected, then the shared values come once in first's order."""
    assert common_elements(first, second) == expected


@given(st.lists(st.integers(-10, 10)), st.lists(st.integers(-10, 10)))
def test_common_elements_matches_naive_reference(first: list[int], second: list[int]) -> None:
    """Given any small-int lists, when intersected, then the result equals the naive version."""
    reference = [x for i, x in enumerate(first) if x in second and x not in first[:i]]
    assert common_elements(first, second) == reference


def test_common_elements_leaves_inputs_untouched() -> None:
    """Given two lists, when intersected, then neither input is modified."""
    first, second = [3, 1, 3], [1, 3]
    common_elements(first, second)
    assert (first, second) == ([3, 1, 3], [1, 3])


@GROUPERS
def test_group_sample(group: Grouper) -> None:
    """Given the unsorted sample, when grouped, then names are grouped by age and sorted."""
    assert group(SAMPLE_CUSTOMERS) == SAMPLE_EXPECTED


def test_sample_input_is_not_presorted() -> None:
    """Given the sample data, then its names are not already in order, so sorting is exercised."""
    names = [customer.name for customer in SAMPLE_CUSTOMERS]
    assert names != sorted(names)


@GROUPERS
def test_group_empty(group: Grouper) -> None:
    """Given no customers, when grouped, then the mapping is empty."""
    assert group([]) == {}


@GROUPERS
def test_group_single_customer(group: Grouper) -> None:
    """Given one customer, when grouped, then there is a single one-name group."""
    assert group([Customer("Zoe", "zoe@example.com", 61)]) == {61: ["Zoe"]}


@given(customers_strategy)
def test_grouping_solutions_agree(customers: list[Customer]) -> None:
    """Given any customers, when grouped both ways, then the results are equal."""
    assert group_by_age(customers) == group_by_age_groupby(customers)


@given(customers_strategy)
def test_groups_sorted_and_complete(customers: list[Customer]) -> None:
    """Given any customers, when grouped, then each group is sorted and nobody is lost."""
    for groups in (group_by_age(customers), group_by_age_groupby(customers)):
        for names in groups.values():
            assert names == sorted(names)
        assert sum(len(names) for names in groups.values()) == len(customers)
        assert set(groups) == {customer.age for customer in customers}


@pytest.mark.parametrize("script", ["exercise_1_1.py", "exercise_1_2.py"])
def test_script_runs_silently(script: str) -> None:
    """Given an exercise script, when run directly, then it exits 0 and prints nothing."""
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "exercises" / script)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == ""
