"""Exercise 1.2: group customers' names by age.

Two solutions: ``group_by_age`` (1.2.1, no imports) and ``group_by_age_groupby``
(1.2.2, ``itertools.groupby``). Run ``python exercises/exercise_1_2.py`` to check both
against the sample data; it prints nothing when they agree with the expected result.
"""

from dataclasses import dataclass
from itertools import groupby


@dataclass(frozen=True)
class Customer:
    """A customer record."""

    name: str
    email: str
    age: int


def group_by_age(customers: list[Customer]) -> dict[int, list[str]]:
    """Map each age to the sorted names of the customers of that age (exercise 1.2.1)."""
    groups: dict[int, list[str]] = {}
    for customer in customers:
        groups.setdefault(customer.age, []).append(customer.name)
    for names in groups.values():
        names.sort()
    return groups


def group_by_age_groupby(customers: list[Customer]) -> dict[int, list[str]]:
    """Map each age to the sorted names of the customers of that age (exercise 1.2.2)."""
    by_age = sorted(customers, key=lambda customer: customer.age)
    return {
        age: sorted(customer.name for customer in group)
        for age, group in groupby(by_age, key=lambda customer: customer.age)
    }


SAMPLE_CUSTOMERS: list[Customer] = [
    Customer("Sara", "sara@example.com", 23),
    Customer("Joe", "joe@example.com", 47),
    Customer("Gary", "gary@example.com", 33),
    Customer("Bob", "bob@example.com", 47),
    Customer("Alice", "alice@example.com", 23),
]

SAMPLE_EXPECTED: dict[int, list[str]] = {23: ["Alice", "Sara"], 47: ["Bob", "Joe"], 33: ["Gary"]}


if __name__ == "__main__":
    assert group_by_age(SAMPLE_CUSTOMERS) == SAMPLE_EXPECTED
    assert group_by_age_groupby(SAMPLE_CUSTOMERS) == SAMPLE_EXPECTED
